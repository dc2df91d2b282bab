"""Inference request rows on SQLite and PostgreSQL: one claim at a time, resumed after a lease runs out, a series held
back from the scheduler while a live request retrieves it, 409's twin (one row per transactionID)."""

from __future__ import annotations

from datetime import timedelta

from dicom_node.store.inference_requests import InferenceRequests, RequestSpec, StudyQuery
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import InferenceRequestSeries, utcnow
from tests.store.test_jobs import receive


def spec(transaction_id: str = "t1") -> RequestSpec:
    return RequestSpec(transaction_id, StudyQuery(study_instance_uid="1.2.3"), "PACS", ["covid19_ct"])


def test_one_row_per_transaction_id(sessions) -> None:
    requests = InferenceRequests(sessions)
    first, created = requests.create(spec())
    assert created and requests.create(spec()) == (first, False)


def test_one_holder_at_a_time_and_resumed_after_its_lease(sessions) -> None:
    requests = InferenceRequests(sessions, lease_seconds=5)
    request_id, _ = requests.create(spec())
    claim = requests.claim("a/host/1")
    assert claim is not None and claim.id == request_id and claim.query.study_instance_uid == "1.2.3"
    assert requests.claim("b/host/2") is None, "held by a/host/1"
    taken = requests.claim("b/host/2", now=utcnow() + timedelta(seconds=6))
    assert taken is not None and taken.owner == "b/host/2", "a/host/1 stopped renewing: another process resumes"
    assert not requests.release(claim, "done"), "the old holder cannot write any more"
    assert requests.release(taken, "retrieving", delay_seconds=60)
    assert requests.claim("c/host/3") is None, "not due before its delay"
    assert requests.cancel(request_id) and not requests.cancel(request_id)


def test_a_live_retrieve_holds_the_series_job(sessions) -> None:
    requests, queue, indexer = InferenceRequests(sessions), JobQueue(sessions, "n1"), Indexer(sessions)
    request_id, _ = requests.create(spec())
    claim = requests.claim("a/host/1")
    assert claim is not None
    requests.set_state(claim, "retrieving")
    requests.replace_series(request_id, [InferenceRequestSeries(
        request_fk=request_id, series_instance_uid="1.2.3.4", study_instance_uid="1.2.3", modality="CT", sop_class_uids=[],
        expected=10, present_before=0, state="retrieving", after_job=0, reason="",
    )])
    receive(indexer, "1.2.3.4", 4, None)
    later = utcnow() + timedelta(seconds=10)
    assert queue.queue_settled(1.0, now=later) == [], "4 of 10 instances: the request holds the series"
    requests.cancel(request_id)
    assert len(queue.queue_settled(1.0, now=later)) == 1, "a cancelled request holds nothing"
