"""Metrics: the SCP's counters moved by a real association, the helpers for the other threads, /metrics."""

from __future__ import annotations

import logging

import pydicom
import pytest
from pynetdicom import AE

from dicom_node import metrics
from dicom_node.net.scp import StorageSCP
from dicom_node.store.files import instance_relpath
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from tests.web.conftest import Site, free_port, make_config, p001_files


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_scp_counts_associations_instances_and_bytes(small_site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dicom_node")  # the SCP and the receive path
    config = make_config(small_site.data_dir, dicom={"port": free_port(), "host": "127.0.0.1", "min_free_disk_mb": 0})
    scp = StorageSCP(config.dicom, small_site.data_dir, Indexer(small_site.sessions), JobQueue(small_site.sessions, "test-node"))
    host, port = scp.start()
    files = p001_files()[:2]  # feet: the small site holds the head end
    before = {
        "accepted": sample("dicom_node_associations_total", outcome="accepted"),
        "rejected": sample("dicom_node_associations_total", outcome="rejected"),
        "instances": sample("dicom_node_instances_received_total"),
        "bytes": sample("dicom_node_received_bytes_total"),
        "refused": sample("dicom_node_instances_refused_total", status="0xC211"),
    }
    try:
        sender = AE(ae_title="MODALITY")
        datasets = [pydicom.dcmread(path) for path in files]
        sender.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
        assoc = sender.associate(host, port, ae_title="CLARA")
        assert assoc.is_established
        for ds in datasets:
            assert assoc.send_c_store(ds).Status == 0x0000
        no_series = pydicom.dcmread(files[0])
        no_series.SOPInstanceUID = "1.2.826.0.1.3680043.999"
        del no_series.SeriesInstanceUID
        assert assoc.send_c_store(no_series).Status == 0xC211
        assoc.release()
        rejected = sender.associate(host, port, ae_title="NOT_OURS")
        assert rejected.is_rejected
    finally:
        scp.stop()
    assert sample("dicom_node_associations_total", outcome="accepted") == before["accepted"] + 1
    assert sample("dicom_node_associations_total", outcome="rejected") == before["rejected"] + 1
    assert sample("dicom_node_instances_refused_total", status="0xC211") == before["refused"] + 1
    assert sample("dicom_node_instances_received_total") == before["instances"] + 2
    paths = [instance_relpath(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in datasets]
    assert sample("dicom_node_received_bytes_total") == before["bytes"] + sum((small_site.data_dir / p).stat().st_size for p in paths)

    # Structured log fields (JSON logs): every line about the association names it, stored instances their series.
    accepted = next(r for r in caplog.records if "accepted" in r.getMessage())
    stored = [r for r in caplog.records if "stored" in r.getMessage()]
    assert len(stored) == 2 and {r.series for r in stored} == {datasets[0].SeriesInstanceUID}  # type: ignore[attr-defined]
    assert {r.association for r in stored} == {accepted.association}  # type: ignore[attr-defined]
    refused = next(r for r in caplog.records if "UID missing" in r.getMessage())
    assert refused.association == accepted.association and not hasattr(refused, "series")  # type: ignore[attr-defined]


def test_helpers_for_worker_exporter_and_inference() -> None:
    before_count = sample("dicom_node_step_duration_seconds_count", step="lungs")
    before_sum = sample("dicom_node_step_duration_seconds_sum", step="lungs")
    metrics.observe_step("lungs", 3.5)
    assert sample("dicom_node_step_duration_seconds_count", step="lungs") == before_count + 1
    assert sample("dicom_node_step_duration_seconds_sum", step="lungs") == before_sum + 3.5
    assert sample("dicom_node_step_duration_seconds_bucket", step="lungs", le="5.0") >= 1

    before = sample("dicom_node_export_attempts_total", destination="pacs", outcome="pending")
    metrics.count_export("pacs", "pending")
    assert sample("dicom_node_export_attempts_total", destination="pacs", outcome="pending") == before + 1

    before = sample("dicom_node_inference_seconds_count", model="lungs", backend="triton-grpc")
    metrics.observe_inference("lungs", "triton-grpc", 0.2)
    assert sample("dicom_node_inference_seconds_count", model="lungs", backend="triton-grpc") == before + 1


def test_metrics_endpoint_counts_jobs_and_exports_in_the_database(site: Site) -> None:
    with site.client() as http:
        response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert 'dicom_node_jobs{state="done"} 1.0' in lines
    assert 'dicom_node_jobs{state="queued"} 0.0' in lines
    assert 'dicom_node_exports{state="failed"} 1.0' in lines
    assert "dicom_node_queue_depth 0.0" in lines
    assert "dicom_node_series_pending 0.0" in lines
    assert any(line.startswith("process_resident_memory_bytes") for line in lines)
    assert any(line.startswith("# TYPE dicom_node_step_duration_seconds histogram") for line in lines)
