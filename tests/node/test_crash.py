"""SIGKILL in the middle of a transfer loses nothing that was acknowledged."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pydicom
import pytest

from tests.dcmtk import dcmtk_env, require, storescu
from tests.node.index import jobs, query
from tests.node.test_receive import wait_for_receivers
from tests.node_process import shared_series


def acknowledged_files(storescu_output: str) -> list[Path]:
    """The files storescu saw answered with Success, from its verbose log."""
    acked, current = [], None
    for line in storescu_output.splitlines():
        if m := re.match(r"I: Sending file: (.+)$", line):
            current = Path(m.group(1))
        elif "Received Store Response (Success)" in line and current is not None:
            acked.append(current)
            current = None
    return acked


@pytest.mark.parametrize("processes", [1, pytest.param(3, marks=pytest.mark.slow)])  # three receiving processes: 12 s, outside the default suite
def test_sigkill_mid_transfer_keeps_every_acknowledged_instance(processes: int, node_factory, tmp_path: Path) -> None:
    """Also with several receiving processes (the transfer lands on any of them; all die with the node)."""
    p001 = shared_series("covid-ct-md", "P001")
    node = node_factory(settings={"jobs": {"settle_seconds": 2.0}, "dicom": {"receive_processes": processes}}).start()
    wait_for_receivers(node, processes)
    out = tmp_path / "storescu.log"
    with open(out, "w") as log:
        sender = subprocess.Popen(
            [require("storescu"), "-v", "-aec", "CLARA", "-xs", "+sd", "+r", "127.0.0.1", str(node.port), str(p001)],
            env=dcmtk_env(), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list((node.data_dir / "instances").rglob("*.dcm"))) < 40:
            time.sleep(0.01)
        node.kill()
        sender.wait(60)
    acked = acknowledged_files(out.read_text())
    assert 20 <= len(acked) < 148, f"the kill should land mid-transfer ({len(acked)} acknowledged)"

    node.start()
    wait_for_receivers(node, processes)
    indexed = {uid: path for uid, path in query(node.data_dir, "SELECT sop_instance_uid, path FROM instance")}
    for source in acked:
        uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
        assert uid in indexed, f"{source.name} was acknowledged but is not indexed"
        assert pydicom.dcmread(node.data_dir / indexed[uid]).PixelData == pydicom.dcmread(source).PixelData
    assert "cut by a restart" in node.log()
    assert not list(node.data_dir.rglob("*.tmp")), "temporary files of unacknowledged instances are cleaned up"

    # the modality sends the series again: the job runs once the series is complete
    assert storescu(node.port, p001).returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(n == 148 and s == "queued" for _, s, n in jobs(node.data_dir)):
        time.sleep(0.2)
    time.sleep(2.5)
    states = [(s, n) for _, s, n in jobs(node.data_dir)]
    assert states == [("queued", 148)], f"the cut transfer is held back, no job of its own: {states}"


def test_a_job_that_keeps_dying_with_the_node_fails_after_max_attempts(node_factory, tmp_path: Path) -> None:
    """Each time the node dies while running a job is one of its attempts: past jobs.max_attempts it fails with the
    reason (a series that takes the node down, e.g. out of memory, was once re-queued 13 times)."""
    import json

    from phantoms.chest import make_phantom, write_phantom_series

    write_phantom_series(make_phantom((256, 256, 80), seed=6), tmp_path / "series")
    node = node_factory(settings={"jobs": {"workers": 1, "max_attempts": 2, "lease_seconds": 2.0}}).start(timeout=120)
    assert storescu(node.port, tmp_path / "series", compressed=False).returncode == 0
    for attempt in (1, 2):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and query(node.data_dir, "SELECT state, attempts FROM job") != [("running", attempt)]:
            time.sleep(0.05)
        assert query(node.data_dir, "SELECT state, attempts FROM job") == [("running", attempt)]
        node.kill()  # the node dies while the job runs
        node.start(timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and query(node.data_dir, "SELECT state FROM job") != [("failed",)]:
        time.sleep(0.2)
    shown = json.loads(node.cli("jobs", "show", "1", "--json").stdout)
    assert (shown["state"], shown["attempts"]) == ("failed", 2)
    assert "failed after 2 attempt(s): the process running it stopped each time" in shown["reason"]
    assert "jobs.max_attempts is 2" in shown["reason"]
