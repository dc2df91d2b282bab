"""The job queue's rules, on SQLite and on PostgreSQL (several workers sharing one database)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.ingest import Indexer, InstanceMeta
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import Export, Job, utcnow


@pytest.fixture
def sessions(database_url: str):
    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def receive(indexer: Indexer, series: str, n: int, association: int | None, start: int = 0) -> None:
    for i in range(start, start + n):
        meta = InstanceMeta(
            sop_instance_uid=f"{series}.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            study_instance_uid="1.2.3", series_instance_uid=series, transfer_syntax_uid="1.2.840.10008.1.2.1",
            patient_id="P1", modality="CT",
        )
        indexer.record(meta, Path(f"instances/{series}/{i}.dcm"), 100, association, "covid19_ct", replace=False)


def jobs(sessions) -> list[tuple[int, str, int]]:
    with sessions() as s:
        return [(j.id, j.state, j.instance_count) for j in s.scalars(select(Job).order_by(Job.id))]


def later(seconds: float = 10):
    return utcnow() + timedelta(seconds=seconds)


def test_one_job_per_series_once_the_association_ended_and_the_series_settled(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    assoc, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.4", 5, assoc)
    assert queue.queue_settled(1.0, now=later()) == [], "an open association is still sending the series"
    assert queue.close_association(assoc, "released", 5, 500, 0) == ["1.2.3.4"]
    assert queue.queue_settled(5.0) == [], "the settle window has not passed"
    assert len(queue.queue_settled(1.0, now=later())) == 1
    assert queue.queue_settled(1.0, now=later()) == [], "a settled series is queued once"
    assert jobs(sessions) == [(1, "queued", 5)]


def test_late_instances_supersede_the_previous_job_and_cancel_its_exports(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.5", 3, None)
    [first] = queue.queue_settled(1.0, now=later())
    claimed = queue.claim("n1/w0")
    assert queue.finish(claimed.id, "done")
    with sessions.begin() as s:
        s.add(Export(job_fk=first, destination="PACS", sop_instance_uid="9.9", sop_class_uid="1.2", path="x", state="pending"))
    receive(indexer, "1.2.3.5", 2, None, start=3)
    [second] = queue.queue_settled(1.0, now=later())
    assert jobs(sessions) == [(first, "superseded", 3), (second, "queued", 5)]
    with sessions() as s:
        assert s.scalars(select(Export.state)).all() == ["cancelled"]


def test_a_superseded_running_job_cannot_finish_as_done(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.6", 3, None)
    queue.queue_settled(1.0, now=later())
    claimed = queue.claim("n1/w0")
    receive(indexer, "1.2.3.6", 1, None, start=3)
    queue.queue_settled(1.0, now=later())
    assert queue.finish(claimed.id, "done") is False


def test_restart_requeues_running_jobs_and_cuts_open_associations(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    assoc, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.7", 2, assoc)
    receive(indexer, "1.2.3.8", 2, None)
    queue.queue_settled(1.0, now=later())
    assert queue.claim("n1/w0") is not None
    other_node = JobQueue(sessions, "n2")
    assert other_node.recover(max_attempts=5) == (0, 0, 0), "a node only recovers what it owned"
    restarted = JobQueue(sessions, "n1")
    assert restarted.recover(max_attempts=5) == (1, 1, 0)
    assert [state for _, state, _ in jobs(sessions)] == ["queued"]
    assert len(restarted.queue_settled(1.0, now=later())) == 1, "the cut association no longer holds its series back"


def test_a_job_that_keeps_stopping_the_node_fails_after_max_attempts(sessions) -> None:
    """Each restart that interrupts a job counts as one of its attempts, as any other failure does."""
    indexer = Indexer(sessions)
    receive(indexer, "1.2.3.10", 2, None)
    JobQueue(sessions, "n1").queue_settled(1.0, now=later())
    reasons = []
    for restart in range(3):
        claimed = JobQueue(sessions, "n1").claim("n1/w0")
        assert claimed is not None and claimed.attempts == restart + 1
        JobQueue(sessions, "n1").recover(max_attempts=3)  # the node was killed while running it, and restarted
        with sessions() as s:
            job = s.get_one(Job, claimed.id)
            reasons.append((job.state, job.reason))
    assert reasons[:2] == [
        ("queued", "re-queued: the node restarted while it was running (attempt 1 of 3)"),
        ("queued", "re-queued: the node restarted while it was running (attempt 2 of 3)"),
    ]
    assert reasons[2] == (
        "failed",
        "the node stopped while running it in each of its 3 attempt(s) (jobs.max_attempts = 3): "
        "the series may be what stops it (out of memory?)",
    )
    assert JobQueue(sessions, "n1").claim("n1/w0") is None


def test_waiting_job_is_not_claimed_before_its_time(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.9", 1, None)
    queue.queue_settled(1.0, now=later())
    claimed = queue.claim("n1/w0")
    assert queue.postpone(claimed.id, "inference server unavailable", 60)
    assert queue.claim("n1/w0") is None
    assert queue.claim("n1/w0", now=later(120)).id == claimed.id


def test_concurrent_workers_and_schedulers_never_duplicate(sessions) -> None:
    indexer = Indexer(sessions)
    for k in range(12):
        receive(indexer, f"1.2.4.{k}", 2, None)
    queues = [JobQueue(sessions, f"node{i}") for i in range(4)]
    created: list[int] = []
    claimed: list[int] = []
    lock = threading.Lock()

    def schedule_and_work(queue: JobQueue) -> None:
        new = queue.queue_settled(1.0, now=later())
        with lock:
            created.extend(new)
        while (job := queue.claim(f"{queue.node_name}/w0")) is not None:
            with lock:
                claimed.append(job.id)
            queue.finish(job.id, "done")

    threads = [threading.Thread(target=schedule_and_work, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(created) == sorted(set(created)) and len(created) == 12
    assert sorted(claimed) == sorted(created), "each job claimed exactly once"
