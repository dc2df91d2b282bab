"""The outbox and its sender in a running node, against real peers: outages, crashes, refusals."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

from tests.export.conftest import export_rows, result_like_objects, seed_exports
from tests.export.peers import P001, Orthanc, StrictStoreSCP, wait_for
from tests.node_process import NodeProcess, free_port

FAST_RETRIES = {
    "retry_initial_seconds": 0.2,
    "retry_max_seconds": 1.0,
    "poll_seconds": 0.1,
    "connection_timeout": 2.0,
    "acse_timeout": 3.0,
    "dimse_timeout": 10.0,
    "network_timeout": 10.0,
    "lease_seconds": 3.0,
}


def export_to(*addresses: str) -> tuple[str, ...]:
    return tuple(arg for address in addresses for arg in ("--export-to", address))


def states(data_dir: Path, destination: str | None = None) -> list[str]:
    return [str(row["state"]) for row in export_rows(data_dir) if destination in (None, row["destination"])]


def settled(data_dir: Path) -> bool:
    return not {"pending", "sending"} & set(states(data_dir))


def test_outage_every_object_arrives_once_when_orthanc_is_back(
    orthanc_factory: Callable[..., Orthanc], node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    pacs = orthanc_factory(start=False)
    node = node_factory(serve_args=export_to(pacs.address), settings={"export": FAST_RETRIES})
    files = sorted(P001.glob("*.dcm"))[:30] + result_like_objects(tmp_path / "results")
    seed_exports(node.data_dir, files, ["ORTHANC"])
    node.start()
    wait_for(lambda: all(int(row["attempts"]) >= 2 for row in export_rows(node.data_dir)), 20, "two failed attempts per export")
    rows = export_rows(node.data_dir)
    assert {row["state"] for row in rows} <= {"pending", "sending"}, "an unreachable PACS must not fail exports before the horizon"
    assert "cannot connect to ORTHANC@127.0.0.1" in str(rows[0]["last_error"])

    pacs.start()
    wait_for(lambda: set(states(node.data_dir)) == {"sent"}, 30, "every export sent after the PACS came back")
    expected = sorted(row["sop_instance_uid"] for row in export_rows(node.data_dir))
    assert sorted(pacs.sop_instance_uids()) == expected
    assert pacs.count_instances() == len(files)


def test_sigkill_while_sending_then_restart_delivers_each_object_once(orthanc: Orthanc, node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory(serve_args=export_to(orthanc.address), settings={"export": FAST_RETRIES | {"batch_size": 10}})
    files = sorted(P001.glob("*.dcm"))
    seed_exports(node.data_dir, files, ["ORTHANC"])
    node.start()

    def in_flight() -> bool:
        return orthanc.count_instances() >= 20 and "sending" in states(node.data_dir)

    wait_for(in_flight, 30, "the first batches to arrive and the next to be in flight", interval=0.01)
    node.kill()
    after_kill = states(node.data_dir)
    assert after_kill.count("sent") < len(files), "the node finished before it was killed: nothing was tested"
    assert "sending" in after_kill

    node.start()
    wait_for(lambda: set(states(node.data_dir)) == {"sent"}, 60, "every export sent after the restart")
    assert "stopped while sending it" in node.log(), "the restarted sender took the rows over once their lease ran out"
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
        settings = {"export": FAST_RETRIES | {"acse_timeout": 8.0}}
        node = node_factory(serve_args=export_to(strict_scp.address, orthanc.address, silent_address), settings=settings)
        seed_exports(node.data_dir, result_like_objects(tmp_path / "results"), ["STRICT", "ORTHANC", "SILENT"])
        node.start()
        # Orthanc and the strict SCP get their answers while SILENT still holds its first association request.
        def answered() -> bool:
            return not {"pending", "sending"} & set(states(node.data_dir, "STRICT") + states(node.data_dir, "ORTHANC"))

        wait_for(answered, 10, "STRICT and ORTHANC done")
        assert states(node.data_dir, "ORTHANC") == ["sent", "sent"]
        assert states(node.data_dir, "SILENT") == ["sending", "sending"]
        node.kill()  # a graceful stop would wait for SILENT's association request to time out

    listed = node.cli("exports", "list", "--json", "--state", "failed")
    failed = json.loads(listed.stdout)
    assert [row["destination"] for row in failed] == ["STRICT"]
    assert failed[0]["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.66.4"
    assert "refused Segmentation Storage" in failed[0]["last_error"] and failed[0]["attempts"] == 1
    assert sorted(states(node.data_dir, "STRICT")) == ["failed", "sent"]
    text = node.cli("exports", "list").stdout
    assert "failed" in text and "refused Segmentation Storage" in text

    retried = node.cli("exports", "retry", "--all-failed")
    assert "1 export(s) queued again" in retried.stdout
    assert sorted(states(node.data_dir, "STRICT")) == ["pending", "sent"]
    missing = node.cli("exports", "retry", "99999", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_refused_association_and_contexts_fail_at_once_with_the_peers_reason(
    strict_scp: StrictStoreSCP, node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    """A PACS that rejects the association, or every context we propose, answered: no 24 h of retries."""
    refusing = StrictStoreSCP(tmp_path / "refusing", ae_title="REFUSER", refuse=True)
    refusing.start()
    try:
        node = node_factory(serve_args=export_to(strict_scp.address, refusing.address), settings={"export": FAST_RETRIES})
        seg = result_like_objects(tmp_path / "results")[:1]  # SEG only: the strict SCP accepts no context of the batch
        seed_exports(node.data_dir, seg, ["STRICT", "REFUSER"])
        node.start()
        wait_for(lambda: settled(node.data_dir), 15, "the exports to settle")
    finally:
        refusing.stop()
    rows = {row["destination"]: row for row in export_rows(node.data_dir)}
    assert rows["STRICT"]["state"] == rows["REFUSER"]["state"] == "failed"
    assert rows["STRICT"]["attempts"] == rows["REFUSER"]["attempts"] == 1
    assert "refused every presentation context proposed: Segmentation Storage" in str(rows["STRICT"]["last_error"])
    assert "abstract syntax not supported" in str(rows["STRICT"]["last_error"])
    assert "rejected the association (rejected permanent, by the service user" in str(rows["REFUSER"]["last_error"])
    assert "did not answer" not in node.log()


def test_dimse_failure_statuses_from_a_real_peer(node_factory: Callable[..., NodeProcess], tmp_path: Path) -> None:
    """Other nodes as the PACS: 0xA700 (disk full) is retried until the horizon, 0xC221 (duplicate refused) fails at once."""
    full = node_factory(ae="FULL", settings={"dicom": {"min_free_disk_mb": 2**40}, "export": {"enabled": False}}).start()
    nodup = node_factory(ae="NODUP", settings={"dicom": {"duplicate_policy": "reject"}, "export": {"enabled": False}}).start()
    sender = node_factory(serve_args=export_to(full.address, nodup.address), settings={"export": FAST_RETRIES | {"retry_horizon_seconds": 3.0}})
    sender.start()  # before seeding: the horizon counts from the enqueue
    seed_exports(sender.data_dir, result_like_objects(tmp_path / "results")[1:], ["FULL", "NODUP"])
    wait_for(lambda: settled(sender.data_dir), 20, "the exports to settle")
    rows = {row["destination"]: row for row in export_rows(sender.data_dir)}
    assert rows["FULL"]["state"] == "failed" and rows["FULL"]["last_status"] == 0xA700
    assert int(rows["FULL"]["attempts"]) >= 3 and "not delivered after" in str(rows["FULL"]["last_error"])
    assert "out of disk space" in str(rows["FULL"]["last_error"])
    assert rows["NODUP"]["state"] == "sent"

    sender.cli("exports", "retry", str(rows["NODUP"]["id"]))
    wait_for(lambda: settled(sender.data_dir), 20, "the re-sent export to settle")
    row = next(r for r in export_rows(sender.data_dir) if r["destination"] == "NODUP")
    assert (row["state"], row["last_status"], row["attempts"]) == ("failed", 0xC221, 1)
    assert "duplicate SOP Instance UID refused" in str(row["last_error"])


def test_unconfigured_destination_fails_with_the_reason(node_factory: Callable[..., NodeProcess], tmp_path: Path) -> None:
    node = node_factory(serve_args=export_to(f"ELSEWHERE@127.0.0.1:{free_port()}"), settings={"export": FAST_RETRIES})
    seed_exports(node.data_dir, result_like_objects(tmp_path / "results"), ["GONE"])
    node.start()
    wait_for(lambda: settled(node.data_dir), 10, "the exports to settle")
    assert {str(row["last_error"]) for row in export_rows(node.data_dir)} == {"destination 'GONE' is not in the configuration"}
