"""Completeness is the PACS's C-FIND count plus an idle timeout, never the end of the C-MOVE alone.

The PACS here is a pynetdicom Q/R SCP serving A0002-B40f (30 real slices) that answers the final C-MOVE success
after 28 sub-operations and stores the last 2 a few seconds later (as some PACS do), or never (a partial retrieve).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelMove

from tests.export.peers import wait_for
from tests.node_process import NodeProcess, free_port, wait_for_port
from tests.retrieve.conftest import A0002_B40F, PIPELINE_SECONDS, Api, body, series_path

pytestmark = pytest.mark.slow  # two pipeline runs: over the default suite's share
SENT_AT_ONCE = 28


class LatePacs:
    """Answers C-FIND with every slice; C-MOVE sends the first 28, answers success, then the rest after `late_seconds`
    (None: never)."""

    def __init__(self, late_seconds: float | None) -> None:
        self.slices = [pydicom.dcmread(p) for p in sorted(series_path(A0002_B40F).glob("*.dcm"))]
        self.late_seconds = late_seconds
        self.port = free_port()
        self.ae = AE(ae_title="LATEPACS")
        self.ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        self.ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        self.ae.add_requested_context(CTImageStorage, self.slices[0].file_meta.TransferSyntaxUID)
        self.node_port = 0
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_FIND, self._find), (evt.EVT_C_MOVE, self._move)]
        )

    def _find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        level, first = event.identifier.QueryRetrieveLevel, self.slices[0]
        rows = {"STUDY": [first], "SERIES": [first], "IMAGE": self.slices}[level]
        for row in rows:
            answer = Dataset()
            answer.QueryRetrieveLevel = level
            for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SOPInstanceUID", "SOPClassUID"):
                setattr(answer, keyword, row.get(keyword, ""))
            yield 0xFF00, answer

    def _move(self, event: evt.Event) -> Iterator[object]:
        yield "127.0.0.1", self.node_port
        yield SENT_AT_ONCE
        for ds in self.slices[:SENT_AT_ONCE]:
            yield 0xFF00, ds
        if self.late_seconds is not None:
            originator = (event.assoc.requestor.ae_title, event.request.MessageID)
            threading.Thread(target=self._send_late, args=originator, daemon=True).start()

    def _send_late(self, originator_ae: str, message_id: int) -> None:
        time.sleep(self.late_seconds or 0)
        assoc = self.ae.associate("127.0.0.1", self.node_port, ae_title="CLARA")
        for ds in self.slices[SENT_AT_ONCE:]:
            assoc.send_c_store(ds, originator_aet=originator_ae, originator_id=message_id)
        assoc.release()

    def stop(self) -> None:
        self.server.shutdown()


def start(tmp: Path, pacs: LatePacs, **retrieve: object) -> NodeProcess:
    http = free_port()
    tmp.mkdir(parents=True)
    node = NodeProcess(tmp=tmp, settings={
        "jobs": {"workers": 1, "settle_seconds": 0.5, "poll_seconds": 0.2},
        "retrieve": {"poll_seconds": 0.2, "idle_timeout_seconds": 4.0, **retrieve},
        "http": {"port": http, "host": "127.0.0.1"},
        "destinations": [{"name": "PACS", "ae_title": "LATEPACS", "host": "127.0.0.1", "port": pacs.port, "retrieve_method": "C-MOVE"}],
    })
    pacs.node_port = node.port
    node.start()
    wait_for_port(http, 30, node.proc)
    return node


@pytest.fixture
def late_pacs(request: pytest.FixtureRequest) -> Iterator[LatePacs]:
    pacs = LatePacs(request.param)
    yield pacs
    pacs.stop()


@pytest.mark.parametrize("late_pacs", [2.0], indirect=True)
def test_an_early_final_success_does_not_start_the_job_early(late_pacs: LatePacs, tmp_path: Path) -> None:
    node = start(tmp_path / "node", late_pacs)
    api = Api(node)
    assert api.post(body("late", "PACS", {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": late_pacs.slices[0].StudyInstanceUID}]})).status_code == 201
    status = api.wait_final("late", PIPELINE_SECONDS)
    assert status["state"] == "done" and not status["partial"], (status, node.log()[-3000:])
    job = status["series"][0]["job"]
    assert job["state"] == "done"
    # pynetdicom's C-MOVE SCP names its own AE as the sub-operations' Move Originator (PS3.7 9.3.1.1 says the AE that
    # asked for the move; Orthanc does so): its 28 are stored but not counted as this request's, the late 2 are.
    assert status["instances"] == {"expected": 30, "received": 2, "alreadyPresent": 0}
    assert status["series"][0]["instancesStored"] == 30
    jobs = node.cli("jobs", "list", "--json")
    assert [row["instances"] for row in json.loads(jobs.stdout)] == [30], "one job, over all 30 slices"


@pytest.mark.parametrize("late_pacs", [None], indirect=True)
def test_a_partial_retrieve_is_processed_and_said(late_pacs: LatePacs, tmp_path: Path) -> None:
    node = start(tmp_path / "node", late_pacs)
    api = Api(node)
    assert api.post(body("partial", "PACS", {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": late_pacs.slices[0].StudyInstanceUID}]})).status_code == 201
    status = api.wait_final("partial", PIPELINE_SECONDS)
    assert status["partial"] and status["series"][0]["reason"] == "28 of 30 instances came", status
    assert any("partial retrieve" in error["message"] and "processing what came" in error["message"] for error in status["errors"])
    assert status["instances"]["expected"] == 30 and status["series"][0]["instancesStored"] == 28
    assert status["state"] == "done" and status["series"][0]["job"]["state"] == "done", (status, node.log()[-3000:])
    [job] = json.loads(node.cli("jobs", "list", "--json").stdout)
    assert job["input_incomplete"] == "a partial retrieve from the PACS: 28 of 30 instances came", "the result says its input is incomplete"


@pytest.mark.parametrize("late_pacs", [None], indirect=True)
def test_a_partial_retrieve_fails_the_request_when_so_configured(late_pacs: LatePacs, tmp_path: Path) -> None:
    node = start(tmp_path / "node", late_pacs, partial="fail")
    api = Api(node)
    assert api.post(body("fail", "PACS", {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": late_pacs.slices[0].StudyInstanceUID}]})).status_code == 201
    status = api.wait_final("fail", PIPELINE_SECONDS)
    assert status["state"] == "failed", status
    assert any("28 of 30 instances" in error["message"] and "retrieve.partial = 'fail'" in error["message"] for error in status["errors"]), status["errors"]
    wait_for(lambda: "not processed: its retrieve came partial (28 of 30 instances came)" in node.log(), 30, f"the series left unprocessed: {node.log()[-3000:]}")
    assert json.loads(node.cli("jobs", "list", "--json").stdout) == [], "no job for the series the request failed for"
