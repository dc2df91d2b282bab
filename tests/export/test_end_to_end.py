"""The whole loop with a real Orthanc: PACS -> node -> pipeline -> SEG and SR back to the PACS.

The node runs the real pipeline with the embedded models on P001.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.export.conftest import export_rows
from tests.export.peers import P001, Orthanc, wait_for
from tests.node_process import NodeProcess

PIPELINE_SECONDS = 240  # P001 through the embedded models on a shared 2-core machine
NODE_SETTINGS = {
    "jobs": {"workers": 1, "settle_seconds": 1.0, "poll_seconds": 0.2},
    "export": {"retry_initial_seconds": 0.2, "retry_max_seconds": 1.0, "poll_seconds": 0.1, "connection_timeout": 2.0, "acse_timeout": 60.0, "lease_seconds": 3.0},
}


@pytest.fixture
def loop(orthanc_factory: Callable[..., Orthanc], node_factory: Callable[..., NodeProcess], tmp_path: Path) -> Iterator[tuple[Orthanc, NodeProcess, str]]:
    """Orthanc holding P001 with the node as a modality, and a node that exports to Orthanc (neither started)."""
    pacs = orthanc_factory(start=False)
    node = node_factory(settings=NODE_SETTINGS, serve_args=("--export-to", pacs.address))
    pacs.add_modality("NODE", node.ae, node.port)
    pacs.start()
    series_uid = pacs.load_series(P001)
    yield pacs, node, series_uid


def all_sent(data_dir: Path) -> bool:
    rows = export_rows(data_dir)
    return bool(rows) and {row["state"] for row in rows} == {"sent"}


def check_results_in_orthanc(pacs: Orthanc, node: NodeProcess, source_series_uid: str) -> None:
    """SEG and SR in P001's study, each in a new series, each object once; the SEG references P001's series."""
    rows = export_rows(node.data_dir)
    assert {row["state"] for row in rows} == {"sent"}, rows
    sent_uids = {row["sop_instance_uid"] for row in rows}
    study_uid = pacs.get(f"/series/{pacs.lookup(source_series_uid, 'Series')}/study")["MainDicomTags"]["StudyInstanceUID"]
    series = pacs.series_of_study(study_uid)
    modalities = {s["MainDicomTags"].get("Modality") for s in series if s["MainDicomTags"]["SeriesInstanceUID"] != source_series_uid}
    assert {"SEG", "SR"} <= modalities
    stored = pacs.sop_instance_uids()
    assert len(stored) == len(set(stored)), "an instance is in Orthanc twice"
    assert sent_uids <= set(stored)
    for uid in sent_uids:
        tags = pacs.get(f"/instances/{pacs.lookup(uid, 'Instance')}/simplified-tags")
        assert tags["StudyInstanceUID"] == study_uid and tags["SeriesInstanceUID"] != source_series_uid
        if tags["Modality"] == "SEG":
            assert tags["ReferencedSeriesSequence"][0]["SeriesInstanceUID"] == source_series_uid


def test_auto_routing_results_come_back_to_the_study(loop: tuple[Orthanc, NodeProcess, str]) -> None:
    pacs, node, series_uid = loop
    node.start()
    pacs.send_series("NODE", series_uid)
    wait_for(lambda: all_sent(node.data_dir), PIPELINE_SECONDS, "the results to be sent back", interval=0.5)
    check_results_in_orthanc(pacs, node, series_uid)


def test_pacs_outage_while_the_job_runs(loop: tuple[Orthanc, NodeProcess, str]) -> None:
    pacs, node, series_uid = loop
    node.start()
    pacs.send_series("NODE", series_uid)
    pacs.stop()
    wait_for(lambda: any(int(row["attempts"]) >= 2 for row in export_rows(node.data_dir)), PIPELINE_SECONDS, "failed attempts", interval=0.5)
    assert "failed" not in {row["state"] for row in export_rows(node.data_dir)}
    pacs.start()
    wait_for(lambda: all_sent(node.data_dir), 60, "the results after the PACS came back", interval=0.2)
    check_results_in_orthanc(pacs, node, series_uid)


@pytest.mark.slow  # 17 s; the default suite keeps kill -9 while sending (tests/export/test_outbox.py)
def test_node_killed_with_exports_in_flight(loop: tuple[Orthanc, NodeProcess, str]) -> None:
    pacs, node, series_uid = loop
    node.start()
    pacs.send_series("NODE", series_uid)
    pacs.stop()
    # Orthanc's DICOM port now accepts connections and never answers: the export stays in flight.
    with socket.socket() as silent:
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", pacs.dicom_port))
        silent.listen(8)
        wait_for(lambda: "sending" in {row["state"] for row in export_rows(node.data_dir)}, PIPELINE_SECONDS, "an export in flight", interval=0.5)
        node.kill()
    pacs.start()
    node.start()
    wait_for(lambda: all_sent(node.data_dir), 60, "the results after the restart", interval=0.2)
    check_results_in_orthanc(pacs, node, series_uid)
