"""The job queue's rules, on SQLite and on PostgreSQL (several workers sharing one database)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from dicom_node.store.ingest import Indexer, InstanceMeta
from dicom_node.store.jobs import JobQueue
from dicom_node.store.leases import LeaseKeeper
from dicom_node.config import Config
from dicom_node.store.models import Export, Instance, Job, Series, utcnow


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
    assert queue.close_association(assoc, "released", 5, 500, 0) == [], "nothing was re-sent"
    assert queue.queue_settled(5.0) == [], "the settle window has not passed"
    assert len(queue.queue_settled(1.0, now=later())) == 1
    assert queue.queue_settled(1.0, now=later()) == [], "a settled series is queued once"
    assert jobs(sessions) == [(1, "queued", 5)]


def test_a_called_ae_with_its_own_settle_time_holds_its_series_longer(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    for called, series_uid in (("CLARA", "1.2.3.4"), ("SLOW", "1.2.3.5")):
        assoc, _ = queue.open_association("SCU", called, "127.0.0.1", 1)
        receive(indexer, series_uid, 3, assoc)
        queue.close_association(assoc, "released", 3, 300, 0)
    settle = {"SLOW": 30.0}
    assert len(queue.queue_settled(1.0, now=later(10), settle_by_ae=settle)) == 1, "CLARA's series: the default settle time"
    assert queue.queue_settled(1.0, now=later(20), settle_by_ae=settle) == [], "SLOW's series: 30 s"
    assert len(queue.queue_settled(1.0, now=later(31), settle_by_ae=settle)) == 1


def test_late_instances_supersede_the_previous_job_and_cancel_its_exports(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.5", 3, None)
    [first] = queue.queue_settled(1.0, now=later())
    claimed = queue.claim("n1/w0")
    assert queue.finish(claimed, "done")
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
    assert queue.finish(claimed, "done") is False


def test_restart_cuts_the_nodes_open_associations_but_leaves_running_jobs_to_their_lease(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    assoc, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.7", 2, assoc)
    receive(indexer, "1.2.3.8", 2, None)
    queue.queue_settled(1.0, now=later())
    assert queue.claim("n1/h/1/w0") is not None
    assert JobQueue(sessions, "n2").close_interrupted_associations() == 0, "a node only closes the associations it received"
    restarted = JobQueue(sessions, "n1")
    assert restarted.close_interrupted_associations() == 1
    assert [state for _, state, _ in jobs(sessions)] == ["running"], "a running job is left to its owner's lease"
    assert restarted.queue_settled(1.0, now=later()) == [], "a series sent only on a cut association is held back as incomplete"
    [job_id] = restarted.queue_settled(1.0, now=later(20), grace_seconds=15)
    with sessions() as s:
        assert s.get_one(Job, job_id).input_incomplete == "not completed by a normal release within 15 s", "after the grace period it runs, marked incomplete"


def test_a_dead_processs_job_is_taken_over_once_its_lease_expired(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1", lease_seconds=30), Indexer(sessions)
    receive(indexer, "1.2.3.10", 2, None)
    queue.queue_settled(1.0, now=later())
    now = utcnow()
    first = queue.claim("n1/h/1/worker-1", now=now)
    assert queue.claim("n2/h/2/worker-1", now=now + timedelta(seconds=29)) is None, "the lease has not run out"
    alive = LeaseKeeper(sessions, "n1", "n1/h/1", job_lease_seconds=30, export_lease_seconds=60)
    assert alive.renew(now + timedelta(seconds=20)) == (1, 0, 0)
    assert queue.claim("n2/h/2/worker-1", now=now + timedelta(seconds=45)) is None, "its owner renewed the lease"
    taken = queue.claim("n2/h/2/worker-1", now=now + timedelta(seconds=51))
    assert taken is not None and taken.id == first.id and taken.attempts == 2
    assert queue.finish(first, "done") is False, "the worker that lost the job cannot finish it"
    assert queue.finish(taken, "done")
    with sessions() as s:
        job = s.get_one(Job, first.id)
        assert (job.state, job.worker, job.lease_until) == ("done", "n2/h/2/worker-1", None)


def test_a_job_whose_process_keeps_dying_fails_with_the_reason(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1", lease_seconds=10, max_attempts=3), Indexer(sessions)
    receive(indexer, "1.2.3.11", 2, None)
    queue.queue_settled(1.0, now=later())
    now = utcnow()
    for attempt in range(1, 4):
        claimed = queue.claim(f"n{attempt}/h/{attempt}/worker-1", now=now + timedelta(seconds=11 * attempt))
        assert claimed is not None and claimed.attempts == attempt
    assert queue.claim("n9/h/9/worker-1", now=now + timedelta(seconds=60)) is None
    with sessions() as s:
        job = s.scalars(select(Job)).one()
    assert job.state == "failed" and "stopped each time" in job.reason and "jobs.max_attempts is 3" in job.reason


def test_an_open_association_of_a_dead_receiver_stops_holding_its_series_back(sessions) -> None:
    queue, indexer = JobQueue(sessions, "receiver-a", lease_seconds=30), Indexer(sessions)
    assoc, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.12", 2, assoc)
    other = JobQueue(sessions, "receiver-b")
    assert other.queue_settled(1.0, now=later(20)) == [], "its receiver may still be sending"
    assert other.queue_settled(1.0, now=later(40)) == [], "the receiver stopped renewing: the send ended abnormally, held back"
    assert len(other.queue_settled(1.0, now=later(40), grace_seconds=30)) == 1, "the grace period has passed"


def test_waiting_job_is_not_claimed_before_its_time(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.9", 1, None)
    queue.queue_settled(1.0, now=later())
    claimed = queue.claim("n1/w0")
    assert queue.postpone(claimed, "inference server unavailable", 60)
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
            queue.finish(job, "done")

    threads = [threading.Thread(target=schedule_and_work, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(created) == sorted(set(created)) and len(created) == 12
    assert sorted(claimed) == sorted(created), "each job claimed exactly once"


def test_with_no_settle_window_the_job_is_queued_when_the_association_is_released(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    assoc, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.20", 4, assoc)
    assert queue.queue_settled(0.0) == [], "the association is still open"
    queue.close_association(assoc, "released", 4, 400, 0)
    assert len(queue.queue_settled(0.0)) == 1
    late, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 2)
    receive(indexer, "1.2.3.20", 1, late, start=4)
    queue.close_association(late, "released", 1, 100, 0)
    assert len(queue.queue_settled(0.0)) == 1
    assert [state for _, state, _ in jobs(sessions)] == ["superseded", "queued"]


def test_results_and_non_images_are_stored_but_start_no_job(sessions) -> None:
    """Only the classes the pipeline's selection takes start a job; every other one is stored, indexed and has its
    received time (retention goes by it)."""
    seg, sr, cr = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.1"
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions, Config().job_sop_classes())
    for number, (series, sop_class) in enumerate((("1.2.3.30", seg), ("1.2.3.31", sr), ("1.2.3.32", cr))):
        meta = InstanceMeta(
            sop_instance_uid=f"{series}.1", sop_class_uid=sop_class, study_instance_uid="1.2.3",
            series_instance_uid=series, transfer_syntax_uid="1.2.840.10008.1.2.1", patient_id="P1", modality="SEG",
        )
        indexer.record(meta, Path(f"instances/{number}.dcm"), 100, None, "covid19_ct", replace=False)
    assert queue.queue_settled(0.0, now=later()) == []
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 3
        assert None not in s.scalars(select(Series.last_received_at)).all()
    assert jobs(sessions) == []


def test_the_receivers_link_cache_does_not_grow_with_the_associations_it_has_seen(sessions) -> None:
    """One entry per open association and series: a node that ran for months must not hold every one it ever saw."""
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    for k in range(20):
        assoc, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
        receive(indexer, f"1.2.3.{k}", 2, assoc)
        assert len(indexer._linked) == 1
        queue.close_association(assoc, "released", 2, 200, 0)
        indexer.association_ended(assoc)
    assert len(indexer._linked) == 0


def test_a_half_sent_series_waits_for_a_normal_release_that_completes_it(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    aborted, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.30", 24, aborted)
    queue.close_association(aborted, "aborted", 24, 2400, 0)
    assert queue.queue_settled(0.0, now=later()) == [], "24 slices of an aborted send give no result"
    complete, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 2)
    receive(indexer, "1.2.3.30", 6, complete, start=24)  # the 24 others came again and were kept as duplicates
    resent = queue.close_association(complete, "released", 6, 600, 0, resent={"1.2.3.30": 24})
    assert resent == [], "the series received new instances too"
    [job_id] = queue.queue_settled(0.0, now=later())
    with sessions() as s:
        job = s.get_one(Job, job_id)
        assert (job.instance_count, job.input_incomplete) == (30, "")


def test_a_re_send_of_only_stored_instances_completes_a_held_series(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    aborted, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.31", 30, aborted)
    queue.close_association(aborted, "aborted", 30, 3000, 0)  # every instance arrived, but the sender did not say so
    assert queue.queue_settled(0.0, now=later()) == []
    again, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 2)
    [outcome] = queue.close_association(again, "released", 0, 0, 0, resent={"1.2.3.31": 30})
    assert outcome.pending and "waits for its job" in str(outcome)
    assert len(queue.queue_settled(0.0, now=later())) == 1


def test_a_later_aborted_send_holds_a_completed_series_back_again(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    first, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 1)
    receive(indexer, "1.2.3.32", 3, first)
    queue.close_association(first, "released", 3, 300, 0)
    assert len(queue.queue_settled(0.0, now=later())) == 1
    second, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 2)
    receive(indexer, "1.2.3.32", 1, second, start=3)
    queue.close_association(second, "aborted", 1, 100, 0)
    assert queue.queue_settled(0.0, now=later()) == [], "new data on an aborted association: held back"


def processed(sessions, series: str) -> tuple[JobQueue, int]:
    """A series of 3 instances whose job is done (with one sent export); the queue and the job's id."""
    queue = JobQueue(sessions, "n1")
    receive(Indexer(sessions), series, 3, None)
    [job_id] = queue.queue_settled(0.0, now=later())
    assert queue.finish(queue.claim("n1/w0"), "done")
    with sessions.begin() as s:
        s.add(Export(job_fk=job_id, destination="PACS", sop_instance_uid="9.9", sop_class_uid="1.2", path="x", state="sent"))
    return queue, job_id


def test_a_re_send_of_a_processed_series_names_its_job_and_exports_resend(sessions) -> None:
    queue, job_id = processed(sessions, "1.2.3.33")
    again, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 2)
    [outcome] = queue.close_association(again, "released", 0, 0, 0, resent={"1.2.3.33": 3})
    assert (outcome.pending, outcome.job_id, outcome.job_state) == (False, job_id, "done")
    assert f"dicom-node exports resend {job_id} --to DESTINATION" in str(outcome)
    assert queue.queue_settled(0.0, now=later()) == [], "nothing new: no new job"


def test_a_re_send_of_a_processed_series_sends_its_results_again_when_configured(sessions) -> None:
    queue, _ = processed(sessions, "1.2.3.34")
    aborted, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 2)
    [outcome] = queue.close_association(aborted, "aborted", 0, 0, 0, resent={"1.2.3.34": 3}, reexport=True)
    assert outcome.reexported == 0, "only a completed re-send counts"
    again, _ = queue.open_association("SCU", "CLARA", "127.0.0.1", 3)
    [outcome] = queue.close_association(again, "released", 0, 0, 0, resent={"1.2.3.34": 3}, reexport=True)
    assert outcome.reexported == 1 and "sent again" in str(outcome)
    with sessions() as s:
        assert s.scalars(select(Export.state)).all() == ["pending"]
