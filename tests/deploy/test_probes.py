"""The container probes (dicom_node/probes.py) against a real node: what the chart's and the image's health checks
run, with the same arguments, without curl or nc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.node_process import REPO, NodeProcess, free_port, wait_for_port


def probe(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_NODE_")} | {"PYTHONPATH": str(REPO), "DICOM_NODE_HTTP__TOKEN": token}
    return subprocess.run([sys.executable, "-P", "-m", "dicom_node.probes", *args], env=env, capture_output=True, text=True, timeout=30)


def test_probes_pass_on_a_running_node_and_fail_saying_why_on_a_closed_port(tmp_path: Path) -> None:
    http_port = free_port()
    node = NodeProcess(tmp=tmp_path, settings={"http": {"port": http_port, "token": "s3cret"}}).start()
    try:
        wait_for_port(http_port, 30)
        assert probe("dicom", str(node.port)).returncode == 0
        assert probe("alive", str(http_port)).returncode == 0
        assert probe("ready", str(http_port), token="s3cret").returncode == 0, probe("ready", str(http_port), token="s3cret").stderr
        wrong = probe("ready", str(http_port), token="wrong")
        assert wrong.returncode == 1 and "/ready" in wrong.stderr
        closed = probe("dicom", str(free_port()))
        assert closed.returncode == 1 and "DICOM port" in closed.stderr
        assert probe("nonsense").returncode == 2
    finally:
        node.stop()
    assert "closed without sending anything (a TCP health check)" in node.log()
    assert "closed before association" not in node.log()
