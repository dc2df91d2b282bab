"""A request's failure is recorded, and its retry resumes, at the step it happened in: against a pynetdicom Q/R SCP
on loopback that finds a study but answers its C-MOVE "out of resources" (transient), and one that finds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelMove
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import load_config
from dicom_node.request_runner import RequestRunner
from dicom_node.store.inference_requests import InferenceRequests, RequestSpec, StudyQuery
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import InferenceRequest
from dicom_node.store.outbox import Outbox
from tests.node_process import free_port
from tests.retrieve.test_retrieve_scu import pending_answers

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.7", "1.2.826.0.1.3680043.8.498.7.1"
OWNER = "test/host/1"


def _find(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    query = event.identifier
    if query.StudyInstanceUID != STUDY:
        yield 0x0000, None
        return
    level = query.QueryRetrieveLevel
    rows = {
        "STUDY": [{}],
        "SERIES": [{"SeriesInstanceUID": SERIES, "Modality": "CT"}],
        "IMAGE": [{"SeriesInstanceUID": SERIES, "SOPInstanceUID": f"{SERIES}.{n}", "SOPClassUID": CTImageStorage} for n in (1, 2)],
    }
    yield from pending_answers(level, STUDY, rows[level])


def _move_out_of_resources(event: evt.Event) -> Iterator[object]:
    yield "127.0.0.1", event.assoc.ae.active_associations[0].local["port"]  # the sub-operations would go to itself
    yield 1  # one sub-operation, which fails before it starts:
    yield 0xA701, None  # out of resources, unable to calculate the number of matches (transient, retried)


@pytest.fixture
def qr_scp() -> Iterator[int]:
    ae = AE(ae_title="QRSCP")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_supported_context(CTImageStorage)
    ae.add_requested_context(CTImageStorage)
    port = free_port()
    handlers = [(evt.EVT_C_FIND, _find), (evt.EVT_C_MOVE, _move_out_of_resources)]
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    yield port
    server.shutdown()


def _runner(tmp_path: Path, sessions: sessionmaker[Session], port: int) -> RequestRunner:
    source = {"name": "QR", "ae_title": "QRSCP", "host": "127.0.0.1", "port": port, "retrieve_method": "C-MOVE"}
    retrieve = {"connection_timeout": 2.0, "acse_timeout": 5.0, "dimse_timeout": 5.0}
    config = load_config(None, {"node": {"data_dir": str(tmp_path)}, "destinations": [source], "retrieve": retrieve}, environ={})
    return RequestRunner(config, sessions, tmp_path, OWNER, JobQueue(sessions, "n1"), Outbox(sessions, config.export, tmp_path))


def _row(sessions: sessionmaker[Session], request_id: int) -> InferenceRequest:
    with sessions() as session:
        row = session.scalar(select(InferenceRequest).where(InferenceRequest.id == request_id))
        assert row is not None
        return row


def test_a_transient_failure_of_the_move_is_retried_at_the_retrieve_not_the_find(
    tmp_path: Path, sqlite_sessions: sessionmaker[Session], qr_scp: int
) -> None:
    sessions = sqlite_sessions
    runner, requests = _runner(tmp_path, sessions, qr_scp), InferenceRequests(sessions)
    request_id, _ = requests.create(RequestSpec("t1", StudyQuery(study_instance_uid=STUDY), "QR", ["covid19_ct"]))
    claim = requests.claim(OWNER)
    assert claim is not None and claim.state == "queued"
    runner.step(claim)
    row = _row(sessions, request_id)
    assert row.state == "retrieving", "resumed by asking the PACS what is still missing, not by a new C-FIND"
    assert [e["step"] for e in row.errors] == ["retrieving"] and "0xA701" in row.errors[0]["message"], row.errors
    assert row.attempts == 1


def test_a_find_that_finds_nothing_fails_at_the_find(tmp_path: Path, sqlite_sessions: sessionmaker[Session], qr_scp: int) -> None:
    sessions = sqlite_sessions
    runner, requests = _runner(tmp_path, sessions, qr_scp), InferenceRequests(sessions)
    request_id, _ = requests.create(RequestSpec("t2", StudyQuery(study_instance_uid=STUDY + ".9"), "QR", ["covid19_ct"]))
    claim = requests.claim(OWNER)
    assert claim is not None
    runner.step(claim)
    row = _row(sessions, request_id)
    assert row.state == "failed"
    assert [e["step"] for e in row.errors] == ["finding"] and "C-FIND found no series" in row.errors[0]["message"], row.errors
