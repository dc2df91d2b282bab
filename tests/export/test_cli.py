"""`dicom-node send` and `dicom-node echo` as an operator runs them, against a running node and real peers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from dicom_node.store.db import make_engine
from dicom_node.store.models import Instance
from tests.export.conftest import result_like_objects
from tests.export.peers import P001, StrictStoreSCP, run_cli
from tests.node_process import NodeProcess, free_port


def instances_in(data_dir: Path) -> int:
    engine = make_engine(f"sqlite:///{data_dir / 'index.sqlite3'}")
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Instance)) or 0)
    finally:
        engine.dispose()


def test_send_p001_to_a_running_node_and_echo_it(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory().start()
    echoed = run_cli("echo", node.address)
    assert echoed.returncode == 0 and "C-ECHO status 0x0000" in echoed.stdout

    sent = run_cli("send", str(P001), "--to", node.address, "--calling-ae", "OPERATOR")
    assert sent.returncode == 0, sent.stderr
    total = len(list(P001.glob("*.dcm")))
    assert f"sent {total} of {total} instance(s) to {node.address}" in sent.stdout
    assert f"{total}/{total}" in sent.stderr and "images/s" in sent.stderr  # the progress bar's last state
    assert instances_in(node.data_dir) == total


def test_send_reports_each_refused_instance_and_exits_non_zero(strict_scp: StrictStoreSCP, tmp_path: Path) -> None:
    ct = sorted(P001.glob("*.dcm"))[:3]
    seg, sr = result_like_objects(tmp_path / "results")
    result = run_cli("send", *map(str, ct), str(seg), str(sr), "--to", strict_scp.address, "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["sent"], summary["failed"]) == (5, 4, 1)
    assert summary["failures"][0]["path"] == str(seg) and "refused Segmentation Storage" in summary["failures"][0]["reason"]


def test_send_and_echo_to_a_closed_port_fail_with_a_clear_message(tmp_path: Path) -> None:
    closed = f"NOBODY@127.0.0.1:{free_port()}"
    sent = run_cli("send", str(P001), "--to", closed)
    assert sent.returncode == 1
    assert f"cannot connect to {closed}: nothing listening" in sent.stderr
    assert "sent 0 of" in sent.stdout

    echoed = run_cli("echo", closed, "--json")
    assert echoed.returncode == 1 and json.loads(echoed.stdout)["ok"] is False

    bad = run_cli("serve", "--export-to", "PACS@nowhere", "--data-dir", str(tmp_path / "unused"))
    assert bad.returncode == 2 and "expected AE@host:port" in bad.stderr
