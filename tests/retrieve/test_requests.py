"""Studies processed on request from a real Orthanc: found by C-FIND, retrieved by C-MOVE, C-GET or WADO-RS,
processed by the embedded models, results back in Orthanc once; the status says what happened."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.export.peers import wait_for
from tests.node_process import NodeProcess, free_port
from tests.retrieve.conftest import A0002_B40F, A0002_B70F, PIPELINE_SECONDS, Api, SourcePacs, body, series_path, start_node


WADO_PATIENT = "RQ-WADO"  # A0002-B40f under new UIDs, as another patient's study of the same date


@pytest.fixture(scope="module")
def node(pacs: SourcePacs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    b40f = series_path(A0002_B40F)
    b70f = series_path(A0002_B70F)
    copies = tmp_path_factory.mktemp("copies")
    pacs.load_copy(b40f, copies, AccessionNumber="ACC-A0002")
    pacs.load_copy(b70f, copies, AccessionNumber="ACC-A0002")
    pacs.load_copy(b40f, copies, new_uids="wado", PatientID=WADO_PATIENT)
    node = start_node(tmp_path_factory.mktemp("node"), pacs)
    yield node
    node.stop()


def study_of(parts: tuple[str, str]) -> tuple[str, str]:
    first = sorted(series_path(parts).glob("*.dcm"))[0]
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


def why_not_done(status: dict, node: NodeProcess) -> str:
    """The request's errors and the node's lines about requests, whole (pytest shortens a repr of the status)."""
    lines = [line for line in node.log().splitlines() if "inference request" in line or "Traceback" in line or "Error" in line]
    return "\n".join([error["message"] for error in status["errors"]] + lines[-40:])


def assert_results_once(pacs: SourcePacs, study_uid: str, status: dict) -> None:
    counts = pacs.objects_in_study(study_uid)
    assert counts.get("SEG", 0) >= 1 and counts.get("SR", 0) >= 1 and counts.get("OT", 0) + counts.get("SC", 0) >= 1, counts
    stored = pacs.sop_instance_uids()
    assert len(stored) == len(set(stored))
    sent = {e["sop_instance_uid"] for e in status["exports"] if e["state"] == "sent"}
    assert sent and sent <= set(stored)


def test_c_move_by_study_and_series(pacs: SourcePacs, node: NodeProcess) -> None:
    api = Api(node)
    study, series = study_of(A0002_B40F)
    details = {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": study, "series": [{"SeriesInstanceUID": series}]}]}
    started = time.monotonic()
    response = api.post(body("move-1", "PACS", details))
    assert response.status_code == 201, response.text
    status = api.wait_final("move-1", PIPELINE_SECONDS)
    assert status["state"] == "done", why_not_done(status, node)
    assert status["instances"] == {"expected": 30, "received": 30, "alreadyPresent": 0}
    assert [s["job"]["state"] for s in status["series"]] == ["done"]
    assert_results_once(pacs, study, status)
    print(f"C-MOVE request for 30 slices done in {time.monotonic() - started:.1f} s")
    again = api.post(body("move-1", "PACS", details))
    assert again.status_code == 409 and again.json()["state"] == "done" and again.json()["id"] == status["id"]


def test_c_get_by_accession_fetches_only_what_is_missing(pacs: SourcePacs, node: NodeProcess) -> None:
    """The accession's study has B40f (already here, its results of this version reused) and B70f (fetched by C-GET)."""
    api = Api(node)
    study, b40f = study_of(A0002_B40F)
    assert api.post(body("get-1", "PACS_GET", {"type": "ACCESSION_NUMBER", "accessionNumbers": ["ACC-A0002"]})).status_code == 201
    status = api.wait_final("get-1", PIPELINE_SECONDS)
    assert status["state"] == "done", why_not_done(status, node)
    assert status["instances"] == {"expected": 60, "received": 30, "alreadyPresent": 30}
    by_series = {s["seriesInstanceUID"]: s for s in status["series"]}
    first = Api(node).status("move-1")["series"][0]["job"]["id"]
    assert by_series[b40f]["job"]["id"] == first  # not run again
    assert_results_once(pacs, study, status)


def test_force_runs_a_series_with_results_again_without_fetching_it(pacs: SourcePacs, node: NodeProcess) -> None:
    """B40f is stored and has results of this version (move-1): `force` runs it again; the same input gives the same
    result UIDs, so the PACS holds each object once."""
    api = Api(node)
    study, b40f = study_of(A0002_B40F)
    earlier = Api(node).status("move-1")["series"][0]["job"]["id"]
    details = {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": study, "series": [{"SeriesInstanceUID": b40f}]}]}
    before = pacs.objects_in_study(study)
    assert api.post(body("force-1", "PACS", details, force=True)).status_code == 201
    status = api.wait_final("force-1", PIPELINE_SECONDS)
    assert status["state"] == "done" and status["force"], why_not_done(status, node)
    assert status["instances"] == {"expected": 30, "received": 0, "alreadyPresent": 30}
    [series] = status["series"]
    assert series["job"]["state"] == "done" and series["job"]["id"] > earlier, "run again"
    assert_results_once(pacs, study, status)
    assert pacs.objects_in_study(study) == before, "the same objects again, under the same UIDs"


def test_unknown_move_destination_fails_within_seconds_explained(pacs: SourcePacs, node: NodeProcess) -> None:
    api = Api(node)
    pacs.remove_modality("CLARA")
    try:
        started = time.monotonic()
        assert api.post(body("a801", "PACS", {"type": "DICOM_PATIENT_ID", "PatientID": WADO_PATIENT})).status_code == 201
        status = api.wait_final("a801", 30)
        took = time.monotonic() - started
    finally:
        pacs.set_modality("CLARA", node.ae, node.port)
    assert status["state"] == "failed" and took < 10, (took, status)
    error = status["errors"][-1]
    # Debian's Orthanc 1.10 answers "unable to process" for an unknown move destination; the standard's 0xA801 is
    # explained likewise (test_retrieve_statuses.py, against a pynetdicom Q/R SCP that answers it).
    assert error["status"] == 0xC000 and error["statusHex"] == "0xC000", status["errors"]
    assert "the PACS knows this node's AE title CLARA (AE title, host and DICOM port), and add it there" in error["message"]
    assert status["instances"]["received"] == 0


def test_wado_rs_by_patient_and_date_range(pacs: SourcePacs, node: NodeProcess) -> None:
    api = Api(node)
    details = {"type": "DICOM_PATIENT_ID", "PatientID": WADO_PATIENT, "studyDateFrom": "20070401", "studyDateTo": "20070430"}
    started = time.monotonic()
    assert api.post(body("wado-1", "PACS_WADO", details)).status_code == 201
    status = api.wait_final("wado-1", PIPELINE_SECONDS)
    assert status["state"] == "done", why_not_done(status, node)
    assert status["instances"] == {"expected": 30, "received": 30, "alreadyPresent": 0}
    assert_results_once(pacs, status["series"][0]["studyInstanceUID"], status)
    print(f"WADO-RS request for 30 slices done in {time.monotonic() - started:.1f} s")


def test_invalid_request_lists_every_mistake(node: NodeProcess) -> None:
    mistakes = {
        "transactionID": "",
        "priority": 300,
        "inputMetadata": {"details": {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": "1.2.abc"}]}},
        "inputResources": [{"interface": "DIMSE", "connectionDetails": {"name": "NOSUCHPACS"}}],
        "outputResources": [{"interface": "DIMSE", "connectionDetails": {"name": "NOWHERE"}}],
    }
    response = Api(node).post(mistakes)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    pointers = sorted(error["pointer"] for error in problem["errors"])
    assert problem["status"] == 422 and len(pointers) == 5, problem
    assert pointers == sorted([
        "/transactionID", "/priority", "/inputMetadata/details/studies/0/StudyInstanceUID",
        "/inputResources/0/connectionDetails/name", "/outputResources/0/connectionDetails/name",
    ])


def test_requests_are_listed_and_cancelled(node: NodeProcess) -> None:
    api = Api(node)
    unreachable = f"NOBODY@127.0.0.1:{free_port()}"  # AE@host:port as a source: C-MOVE, retried while nothing listens
    assert api.post(body("cancel-me", unreachable, {"type": "ACCESSION_NUMBER", "accessionNumbers": ["X"]})).status_code == 201
    wait_for(lambda: api.status("cancel-me")["errors"], 10, "a failed attempt")
    cancelled = httpx.delete(f"{api.url}/cancel-me", timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert httpx.delete(f"{api.url}/move-1", timeout=10).status_code == 409  # done: nothing to cancel
    listed = {row["transactionID"]: row["state"] for row in httpx.get(api.url, timeout=10).json()}
    assert listed["move-1"] == "done" and listed["cancel-me"] == "cancelled"
    page = httpx.get(api.url.replace("/api/inference", "/"), timeout=10).text
    assert '<table id="request-table">' in page


def test_cli_process_prints_progress_and_exits_by_outcome(node: NodeProcess) -> None:
    study, _ = study_of(A0002_B40F)
    done = node.cli("process", "--from", "PACS", "--study", study, "--timeout", "120", check=False, timeout=150)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "done: 0 of 60 instance(s) retrieved, 60 already here" in done.stderr  # both series here: results reused
    assert done.stdout.count(": done (") == 2, done.stdout
    invalid = node.cli("process", "--from", "NOSUCH", "--study", "1.2.3", check=False)
    assert invalid.returncode == 2 and "source 'NOSUCH' is not configured" in invalid.stderr
