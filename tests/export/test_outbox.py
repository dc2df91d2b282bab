"""The outbox and its sender in a running node, against real peers: outages, crashes, refusals."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

from tests.export.conftest import export_rows, result_like_objects, seed_exports
from tests.export.peers import P001, NodeProcess, Orthanc, StrictStoreSCP, free_port, run_cli, wait_for

FAST_RETRIES = {
    "DICOM_NODE_EXPORT__RETRY_INITIAL_SECONDS": "0.2",
    "DICOM_NODE_EXPORT__RETRY_MAX_SECONDS": "1",
    "DICOM_NODE_EXPORT__POLL_SECONDS": "0.1",
    "DICOM_NODE_EXPORT__CONNECTION_TIMEOUT": "2",
    "DICOM_NODE_EXPORT__ACSE_TIMEOUT": "3",
    "DICOM_NODE_EXPORT__DIMSE_TIMEOUT": "10",
    "DICOM_NODE_EXPORT__NETWORK_TIMEOUT": "10",
}


def states(data_dir: Path, destination: str | None = None) -> list[str]:
    return [str(row["state"]) for row in export_rows(data_dir) if destination in (None, row["destination"])]


def settled(data_dir: Path) -> bool:
    return not {"pending", "sending"} & set(states(data_dir))


def test_outage_every_object_arrives_once_when_orthanc_is_back(
    orthanc_factory: Callable[..., Orthanc], node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    pacs = orthanc_factory(start=False)
    node = node_factory(export_to=[pacs.address], env=FAST_RETRIES)
    files = sorted(P001.glob("*.dcm"))[:30] + result_like_objects(tmp_path / "results")
    seed_exports(node.data_dir, files, ["ORTHANC"])
    node.start()
    wait_for(lambda: all(int(row["attempts"]) >= 2 for row in export_rows(node.data_dir)), 20, "two failed attempts per export")
    rows = export_rows(node.data_dir)
    assert {row["state"] for row in rows} <= {"pending", "sending"}, "an unreachable PACS must not fail exports before the horizon"
    assert "cannot connect to ORTHANC@127.0.0.1" in str(rows[0]["reason"])

    pacs.start()
    wait_for(lambda: set(states(node.data_dir)) == {"sent"}, 30, "every export sent after the PACS came back")
    expected = sorted(row["sop_instance_uid"] for row in export_rows(node.data_dir))
    assert sorted(pacs.sop_instance_uids()) == expected
    assert pacs.count_instances() == len(files)


def test_sigkill_while_sending_then_restart_delivers_each_object_once(
    orthanc: Orthanc, node_factory: Callable[..., NodeProcess]
) -> None:
    env = {**FAST_RETRIES, "DICOM_NODE_EXPORT__BATCH_SIZE": "10"}
    node = node_factory(export_to=[orthanc.address], env=env)
    files = sorted(P001.glob("*.dcm"))
    seed_exports(node.data_dir, files, ["ORTHANC"])
    node.start()
    def in_flight() -> bool:
        return orthanc.count_instances() >= 20 and "sending" in states(node.data_dir)

    wait_for(in_flight, 30, "the first batches to arrive and the next to be in flight", interval=0.01)
    node.kill()
    after_kill = states(node.data_dir)
    assert after_kill.count("sent") < len(files), "the node finished before it was killed: nothing was tested"
    assert "sending" in after_kill, "no export was in flight when the node was killed"

    node.start()
    wait_for(lambda: set(states(node.data_dir)) == {"sent"}, 60, "every export sent after the restart")
    assert "in flight when the sender stopped" in node.log()
    uids = orthanc.sop_instance_uids()
    assert len(uids) == len(set(uids)) == len(files)
    assert set(uids) == {row["sop_instance_uid"] for row in export_rows(node.data_dir)}


def test_refused_sop_class_fails_visibly_without_blocking_other_destinations(
    orthanc: Orthanc, strict_scp: StrictStoreSCP, node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    with socket.socket() as silent:  # accepts TCP connections, never answers an association request
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_address = f"SILENT@127.0.0.1:{silent.getsockname()[1]}"
        env = {**FAST_RETRIES, "DICOM_NODE_EXPORT__ACSE_TIMEOUT": "8"}
        node = node_factory(export_to=[strict_scp.address, orthanc.address, silent_address], env=env)
        seed_exports(node.data_dir, result_like_objects(tmp_path / "results"), ["STRICT", "ORTHANC", "SILENT"])
        node.start()
        # Orthanc and the strict SCP get their answers while SILENT still holds its first association request.
        wait_for(lambda: not {"pending", "sending"} & set(states(node.data_dir, "STRICT") + states(node.data_dir, "ORTHANC")), 10, "STRICT and ORTHANC done")
        assert states(node.data_dir, "ORTHANC") == ["sent", "sent"]
        assert states(node.data_dir, "SILENT") == ["sending", "sending"]
        node.kill()  # a graceful stop would wait for SILENT's association request to time out

    listed = run_cli("exports", "list", "--json", "--state", "failed", "--data-dir", str(node.data_dir))
    assert listed.returncode == 0, listed.stderr
    failed = json.loads(listed.stdout)
    assert [row["destination"] for row in failed] == ["STRICT"]
    assert failed[0]["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.66.4"
    assert "refused Segmentation Storage" in failed[0]["reason"] and failed[0]["attempts"] == 1
    assert sorted(states(node.data_dir, "STRICT")) == ["failed", "sent"]
    text = run_cli("exports", "list", "--data-dir", str(node.data_dir)).stdout
    assert "failed" in text and "refused Segmentation Storage" in text

    retried = run_cli("exports", "retry", "--all-failed", "--data-dir", str(node.data_dir))
    assert retried.returncode == 0 and "1 export(s) queued again" in retried.stdout
    assert sorted(states(node.data_dir, "STRICT")) == ["pending", "sent"]
    missing = run_cli("exports", "retry", "99999", "--data-dir", str(node.data_dir))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_dimse_failure_statuses_from_a_real_peer(node_factory: Callable[..., NodeProcess], tmp_path: Path) -> None:
    """Another node as the PACS: 0xA700 (disk full) is retried until the horizon, 0xC221 (duplicate refused) fails at once."""
    full = node_factory(ae_title="FULL", env={"DICOM_NODE_DICOM__MIN_FREE_DISK_MB": str(2**40), "DICOM_NODE_EXPORT__ENABLED": "false"})
    strict = node_factory(ae_title="NODUP", env={"DICOM_NODE_DICOM__DUPLICATE_POLICY": "reject", "DICOM_NODE_EXPORT__ENABLED": "false"})
    full.start()
    strict.start()
    env = {**FAST_RETRIES, "DICOM_NODE_EXPORT__RETRY_HORIZON_SECONDS": "3"}
    sender = node_factory(export_to=[full.address, strict.address], env=env)
    sender.start()  # before seeding: the horizon counts from the enqueue
    seed_exports(sender.data_dir, result_like_objects(tmp_path / "results")[1:], ["FULL", "NODUP"])
    wait_for(lambda: settled(sender.data_dir), 20, "the exports to settle")
    rows = {row["destination"]: row for row in export_rows(sender.data_dir)}
    assert rows["FULL"]["state"] == "failed" and rows["FULL"]["last_status"] == "0xA700"
    assert int(rows["FULL"]["attempts"]) >= 3 and "not delivered after" in str(rows["FULL"]["reason"])
    assert "out of disk space" in str(rows["FULL"]["reason"])
    assert rows["NODUP"]["state"] == "sent"

    again = run_cli("exports", "retry", str(rows["NODUP"]["id"]), "--data-dir", str(sender.data_dir))
    assert again.returncode == 0, again.stderr
    wait_for(lambda: settled(sender.data_dir), 20, "the re-sent export to settle")
    row = next(r for r in export_rows(sender.data_dir) if r["destination"] == "NODUP")
    assert (row["state"], row["last_status"], row["attempts"]) == ("failed", "0xC221", 1)
    assert "duplicate SOP Instance UID refused" in str(row["reason"])


def test_unconfigured_destination_fails_with_the_reason(node_factory: Callable[..., NodeProcess], tmp_path: Path) -> None:
    node = node_factory(export_to=[f"ELSEWHERE@127.0.0.1:{free_port()}"], env=FAST_RETRIES)
    seed_exports(node.data_dir, result_like_objects(tmp_path / "results"), ["GONE"])
    node.start()
    wait_for(lambda: settled(node.data_dir), 10, "the exports to settle")
    assert {str(row["reason"]) for row in export_rows(node.data_dir)} == {"destination 'GONE' is not in the configuration"}
