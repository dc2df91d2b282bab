"""On-request processing at its edges (slow: each test has its own Orthanc and node): P001 through every retrieve
method and input kind, Orthanc down then back, the node killed mid-retrieval, two requests for one study."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pydicom
import pytest

from tests.export.peers import P001, wait_for
from tests.node_process import wait_for_port
from tests.retrieve.conftest import A0002_B40F, PIPELINE_SECONDS, Api, SourcePacs, body, series_path, start_node

pytestmark = pytest.mark.slow

P001_ACCESSION = "ACC-P001"


def p001_study() -> str:
    return str(pydicom.dcmread(sorted(P001.glob("*.dcm"))[0], stop_before_pixels=True).StudyInstanceUID)


def details_for(kind: str, study: str, patient: str, date: str) -> dict:
    if kind == "DICOM_UID":
        return {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": study}]}
    if kind == "ACCESSION_NUMBER":
        return {"type": "ACCESSION_NUMBER", "accessionNumbers": [P001_ACCESSION]}
    return {"type": "DICOM_PATIENT_ID", "PatientID": patient, "studyDateFrom": date, "studyDateTo": date}


def instance_rows(data_dir: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(data_dir / "index.sqlite3") as db:
        return db.execute("SELECT sop_instance_uid, association_fk FROM instance").fetchall()


@pytest.mark.parametrize("source", ["PACS", "PACS_GET", "PACS_WADO"])
@pytest.mark.parametrize("kind", ["DICOM_UID", "ACCESSION_NUMBER", "DICOM_PATIENT_ID"])
def test_p001_matrix(fresh_pacs: SourcePacs, tmp_path: Path, source: str, kind: str) -> None:
    fresh_pacs.load_copy(P001, tmp_path / "copy", AccessionNumber=P001_ACCESSION)
    node = start_node(tmp_path / "node", fresh_pacs)
    api = Api(node)
    started = time.monotonic()
    assert api.post(body("p001", source, details_for(kind, p001_study(), "98C14734-ASSH", "20200305"))).status_code == 201
    status = api.wait_final("p001", PIPELINE_SECONDS)
    assert status["state"] == "done", (status, node.log()[-3000:])
    assert status["instances"] == {"expected": 148, "received": 148, "alreadyPresent": 0}
    counts = fresh_pacs.objects_in_study(p001_study())
    assert counts.get("SEG") == 1 and counts.get("SR") == 1 and counts.get("OT", 0) + counts.get("SC", 0) >= 1, counts
    stored = fresh_pacs.sop_instance_uids()
    assert len(stored) == len(set(stored))
    print(f"P001 {kind} over {source}: done in {time.monotonic() - started:.1f} s")


def test_pacs_down_is_retried_then_done(fresh_pacs: SourcePacs, tmp_path: Path) -> None:
    fresh_pacs.load_series(series_path(A0002_B40F))
    node = start_node(tmp_path / "node", fresh_pacs)
    fresh_pacs.stop()
    api = Api(node)
    assert api.post(body("down", "PACS", {"type": "DICOM_PATIENT_ID", "PatientID": "Lung_Dx-A0002"})).status_code == 201
    waiting = wait_for(lambda: len((s := api.status("down"))["errors"]) >= 2 and s, 30, "two failed attempts")
    assert waiting["state"] in ("queued", "finding") and "cannot connect" in waiting["errors"][0]["message"]
    fresh_pacs.start()
    status = api.wait_final("down", PIPELINE_SECONDS)
    assert status["state"] == "done", (status, node.log()[-3000:])
    assert status["instances"]["received"] == 30 and status["attempts"] == 0


def test_node_killed_mid_retrieval_resumes_without_fetching_twice(fresh_pacs: SourcePacs, tmp_path: Path) -> None:
    fresh_pacs.load_series(P001)
    node = start_node(tmp_path / "node", fresh_pacs, lease_seconds=3.0)
    api = Api(node)
    assert api.post(body("kill", "PACS", {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": p001_study()}]})).status_code == 201
    wait_for(lambda: len(instance_rows(node.data_dir)) >= 20, 60, "the first instances", interval=0.01)
    node.kill()
    before = instance_rows(node.data_dir)
    assert 20 <= len(before) < 148, len(before)
    node.start()
    wait_for_port(node.settings["http"]["port"], 30, node.proc)
    status = api.wait_final("kill", PIPELINE_SECONDS)
    assert status["state"] == "done", (status, node.log()[-3000:])
    after = instance_rows(node.data_dir)
    assert len(after) == 148 and set(before) <= set(after)  # what was stored kept its row and association
    assert "is a duplicate" not in node.log()  # nothing stored was sent again
    assert status["instances"] == {"expected": 148, "received": 148, "alreadyPresent": 0}
    print(f"killed after {len(before)} of 148 instances; resumed and done")


def test_two_requests_for_one_study_share_one_retrieval(fresh_pacs: SourcePacs, tmp_path: Path) -> None:
    fresh_pacs.load_series(P001)
    node = start_node(tmp_path / "node", fresh_pacs)
    api = Api(node)
    details = {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": p001_study()}]}
    assert api.post(body("first", "PACS", details)).status_code == 201
    wait_for(lambda: api.status("first")["state"] == "retrieving", 30, "the first retrieve", interval=0.01)
    assert api.post(body("second", "PACS", details)).status_code == 201
    first, second = api.wait_final("first", PIPELINE_SECONDS), api.wait_final("second", PIPELINE_SECONDS)
    assert first["state"] == second["state"] == "done", (first, second, node.log()[-3000:])
    assert first["instances"]["received"] + second["instances"]["received"] == 148
    assert first["series"][0]["job"]["id"] == second["series"][0]["job"]["id"]  # one job, one result
    assert "is a duplicate" not in node.log()
