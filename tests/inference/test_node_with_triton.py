"""The whole node, started through its CLI, running its jobs on the real tritonserver (no mocks).

A real series arrives over DICOM (dcmtk storescu), the node queues its job and the
worker calls both models on Triton, over HTTP or gRPC: the results must equal the
embedded backend's, a model that does not take what the node sends must fail the
job saying which tensor and how, and a Triton that goes away must make the job
wait (not fail) while the node keeps receiving, and then finish once it is back.

The embedded reference is the session's `processed_p001` (a node with the default,
embedded backend that processed P001; shared with tests/node and tests/web).
CPU (about 90 s on the 2-core machine when run alone): P001 goes through the
pipeline four times (that embedded job, the HTTP and gRPC jobs, the outage test's
job, which is compared too) and A0002-B70f (30 slices) once; the contract test
fails before the pipeline runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from tests.dcmtk import echoscu, storescu
from tests.node.index import query
from tests.node_process import NodeProcess, free_port, shared_series
from tests.processed_node import ProcessedSeries
from tests.triton_server import TritonEndpoints

pytestmark = pytest.mark.triton

P001 = ("covid-ct-md", "P001")
B70F = ("lung-pet-ct-dx", "A0002-B70f")
FINISHED = ("done", "failed", "skipped", "superseded")


def url_of(triton: TritonEndpoints, protocol: str) -> str:
    return triton.http_url if protocol == "http" else triton.grpc_url


def series_uid(folder: Path) -> str:
    first = next(folder.glob("*.dcm"))
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


def on_triton(url: str, **model: Any) -> dict[str, Any]:
    """`[models]` with both models on the Triton at `url`; `model` adds settings to both."""
    return {"lung_segmentation": {"backend": "triton", "url": url, **model},
            "covid_classifier": {"backend": "triton", "url": url, **model}}


def node_settings(models: dict[str, Any], **jobs: Any) -> dict[str, Any]:
    return {"jobs": {"workers": 1, "settle_seconds": 1.0, "poll_seconds": 0.2, **jobs}, "models": models}


def job_of(data_dir: Path, uid: str) -> dict[str, Any] | None:
    """The newest job of the series, as the index holds it."""
    rows = query(
        data_dir,
        "SELECT j.id, j.state, j.reason, j.attempts, j.not_before, j.result FROM job j "
        "JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ? ORDER BY j.id DESC LIMIT 1",
        uid,
    )
    if not rows:
        return None
    job_id, state, reason, attempts, not_before, result = rows[0]
    return {"id": job_id, "state": state, "reason": reason, "attempts": attempts, "not_before": not_before,
            "result": json.loads(result) if result else {}}


def wait_for_job(node: NodeProcess, uid: str, until, timeout: float, what: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Poll the index until the series' job satisfies `until`; fail with the job and the node's log tail."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        if (node.data_dir / "index.sqlite3").exists():
            job = job_of(node.data_dir, uid)
            if job is not None and until(job):
                return job
        if node.proc is not None and node.proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"job of {uid} not {what} after {timeout} s: {job}\nnode log:\n{node.log()[-6000:]}")


def finished(job: dict[str, Any]) -> bool:
    return job["state"] in FINISHED


def send(node: NodeProcess, folder: Path, compressed: bool = True) -> None:
    sent = storescu(node.port, folder, compressed=compressed)
    assert sent.returncode == 0, sent.stderr[-3000:]


def assert_equals_embedded(node: NodeProcess, job: dict[str, Any], embedded: EmbeddedResult) -> None:
    assert job["state"] == "done", job["reason"]
    masks_path = node.data_dir / job["result"]["files"]["masks"]
    assert masks_path == node.data_dir / "results" / str(job["id"]) / "masks.npz"
    with np.load(masks_path) as masks:
        np.testing.assert_array_equal(masks["lung_labels"], embedded.lung_labels)
        np.testing.assert_array_equal(masks["opacity_mask"], embedded.opacity_mask)
    on_triton, reference = job["result"]["classification"], embedded.classification
    assert on_triton["scores"] == reference["scores"]
    assert on_triton["class_names"] == reference["class_names"]
    assert on_triton["model_name"] == "covid_classifier", "the job did not run on Triton"
    assert on_triton["baseline"], "the served opacity baseline must not pass for a trained classifier"


@dataclass(frozen=True)
class EmbeddedResult:
    lung_labels: np.ndarray
    opacity_mask: np.ndarray
    classification: dict[str, Any]


@pytest.fixture(scope="module")
def embedded_p001(processed_p001: ProcessedSeries) -> EmbeddedResult:
    """P001's job on a node with the default (embedded) backend: the session's node that processed P001."""
    assert processed_p001.state == "done", processed_p001.reason
    job = job_of(processed_p001.node.data_dir, processed_p001.series_instance_uid)
    assert job is not None and job["id"] == processed_p001.job_id
    with np.load(processed_p001.node.data_dir / job["result"]["files"]["masks"]) as masks:
        result = EmbeddedResult(masks["lung_labels"], masks["opacity_mask"], job["result"]["classification"])
    assert (result.lung_labels > 0).mean() > 0.05, "no lungs found in P001: a poor reference"
    assert result.classification["model_name"] == "dicom-node-opacity-baseline", "the reference must be the embedded model"
    return result


@pytest.mark.parametrize("protocol", [pytest.param("http", marks=pytest.mark.slow), "grpc"])  # http: 13 s more, outside the default suite
def test_a_job_on_triton_gives_the_embedded_result(
    triton: TritonEndpoints, node_factory, embedded_p001: EmbeddedResult, protocol: str
) -> None:
    folder = shared_series(*P001)
    node = node_factory(settings=node_settings(on_triton(url_of(triton, protocol)))).start()

    send(node, folder)
    job = wait_for_job(node, series_uid(folder), finished, 180, "finished")

    assert_equals_embedded(node, job, embedded_p001)
    assert job["attempts"] == 1
    assert "model covid_classifier of pipeline covid19_ct is ready" in node.log(), "the start-up check did not pass"


def test_a_model_contract_mismatch_fails_the_job_naming_the_tensor_and_both_shapes(
    triton: TritonEndpoints, node_factory
) -> None:
    folder = shared_series(*B70F)
    models = on_triton(triton.grpc_url)
    models["covid_classifier"]["input_dims"] = [1, 1, 96, 96, 32]
    node = node_factory(settings=node_settings(models)).start()

    send(node, folder, compressed=False)
    job = wait_for_job(node, series_uid(folder), finished, 60, "finished")

    assert job["state"] == "failed"
    reason = job["reason"]
    assert reason.startswith("model contract mismatch: "), reason
    assert "input 'NV_MODEL_INPUT'" in reason and "covid_classifier" in reason
    assert "[1, 1, 96, 96, 32]" in reason and "[1, 1, 192, 192, 64]" in reason
    assert job["attempts"] == 1, "a mismatch is permanent: the job must not be retried"
    assert not (node.data_dir / "results" / str(job["id"])).exists()


def test_the_node_starts_and_receives_while_triton_cannot_be_reached(node_factory) -> None:
    """The start-up model check only reports: receiving never waits for inference."""
    nowhere = f"grpc://127.0.0.1:{free_port()}"
    quick = {"connect_timeout_s": 1.0, "retries": 0}
    node = node_factory(settings=node_settings(on_triton(nowhere, **quick), retry_delay_seconds=60.0)).start()

    assert echoscu(node.port).returncode == 0
    assert f"model lung_segmentation of pipeline covid19_ct is unavailable (jobs will wait for it): Triton at {nowhere}" in node.log()
    assert "model covid_classifier of pipeline covid19_ct is unavailable" in node.log()


@pytest.mark.slow  # 26 s; the default suite keeps the client's retry bound across a stopped server (tests/inference/test_triton.py)
def test_triton_stopped_makes_the_job_wait_while_the_node_receives_then_finish(
    triton: TritonEndpoints, node_factory, embedded_p001: EmbeddedResult
) -> None:
    """Triton goes away while the job runs (the worker has claimed it): the job goes back to the queue
    with the reason and a not_before, the node keeps receiving, and once Triton is back (same ports)
    the job finishes with the embedded result.  Runs last in this module: it stops the shared server."""
    p001, b70f = shared_series(*P001), shared_series(*B70F)
    quick = {"connect_timeout_s": 1.0, "request_timeout_s": 60.0, "retries": 1, "backoff_s": 0.2, "backoff_max_s": 0.2}
    node = node_factory(
        settings=node_settings(on_triton(triton.grpc_url, **quick), retry_delay_seconds=2.0, max_attempts=100)
    ).start()

    send(node, p001)
    wait_for_job(node, series_uid(p001), lambda j: j["state"] == "running", 60, "running")
    triton.stop()
    try:
        waiting = wait_for_job(
            node, series_uid(p001), lambda j: j["state"] == "queued" and j["attempts"] >= 1, 60, "postponed"
        )
        assert "waiting for inference" in waiting["reason"] and f"Triton at {triton.grpc_url} did not answer the " in waiting["reason"], waiting["reason"]
        assert waiting["not_before"] is not None

        # The node keeps receiving while its job waits.
        send(node, b70f, compressed=False)
        instances = query(
            node.data_dir,
            "SELECT count(*) FROM instance i JOIN series s ON s.id = i.series_fk WHERE s.series_instance_uid = ?",
            series_uid(b70f),
        )
        assert instances == [(len(list(b70f.glob("*.dcm"))),)]

        # Every retry_delay_seconds the worker claims the job again for a moment: read until it is queued.
        for _ in range(5):
            listed = json.loads(node.cli("jobs", "list", "--json").stdout)
            p001_job = next(j for j in listed if j["series_instance_uid"] == series_uid(p001))
            if p001_job["state"] == "queued":
                break
        assert p001_job["state"] == "queued", p001_job
        assert "waiting for inference" in p001_job["reason"] and "Triton at" in p001_job["reason"]
        assert p001_job["not_before"], "a waiting job says when it is tried again"
        assert not any(j["state"] in ("done", "failed") for j in listed), listed
    finally:
        triton.start()

    job = wait_for_job(node, series_uid(p001), finished, 180, "finished after Triton came back")
    assert job["attempts"] >= 2
    assert_equals_embedded(node, job, embedded_p001)
    other = wait_for_job(node, series_uid(b70f), finished, 120, "finished after Triton came back")
    assert other["state"] == "done", other["reason"]
