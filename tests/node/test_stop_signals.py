"""A node told to stop stops, however many signals it gets (a service manager's SIGTERM, then Ctrl-C, ...)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest


def _processes(pid: int) -> list[int]:
    """The node and its receiving processes."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *map(int, children)]


@pytest.mark.parametrize("trial", range(3))
def test_a_storm_of_stop_signals_stops_the_node_and_its_receiving_processes(node_factory, trial: int) -> None:
    """300 SIGTERMs and SIGINTs in a row: a handler that took a lock deadlocked when the next signal interrupted it
    (4 times in 5); every process must exit, cleanly, within the time a service manager waits."""
    node = node_factory(settings={"dicom": {"receive_processes": 2}}).start()
    deadline = time.monotonic() + 60
    while "receiving process ready" not in node.log():
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)
    processes = _processes(node.proc.pid)
    assert len(processes) == 2, processes
    for pid in processes:
        for number in range(300):
            try:
                os.kill(pid, signal.SIGINT if number % 2 else signal.SIGTERM)
            except ProcessLookupError:
                break
    assert node.proc.wait(20) == 0
    for pid in processes[1:]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), f"receiving process {pid} still runs"
    assert "node stopped" in node.log()
