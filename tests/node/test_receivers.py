"""Receiving processes (`dicom.receive_processes`): restarted when one dies, gone when the node is."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.dcmtk import storescu
from tests.node.index import query
from tests.node.test_receive import wait_for_receivers


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_receiving_process_that_dies_is_replaced_and_all_go_with_the_node(node_factory, tmp_path: Path) -> None:
    node = node_factory(settings={"dicom": {"receive_processes": 2}}).start()
    wait_for_receivers(node, 2)
    assert node.proc is not None
    [child] = children(node.proc.pid)
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while node.log().count("receiving process ready") < 2:
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)
    assert "exited with -9: starting it again" in node.log()
    [replacement] = children(node.proc.pid)
    assert replacement != child

    # the node still receives after the replacement (whichever process takes each association)
    series = tmp_path / "series"
    from phantoms.chest import make_phantom, write_phantom_series

    write_phantom_series(make_phantom((64, 64, 12), seed=3), series)
    for _ in range(4):
        assert storescu(node.port, series, compressed=False).returncode == 0
    assert query(node.data_dir, "SELECT count(*) FROM instance") == [(12,)]

    # the node SIGKILLed alone (not its process group): its receiving process sees the pipe end and stops
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(10)
    deadline = time.monotonic() + 30
    while alive(replacement):
        assert time.monotonic() < deadline, "the receiving process outlived its node"
        time.sleep(0.1)
