"""The job queue: when a series is complete, one job; later data supersedes it.

A series is *pending* from its first new instance until a job is queued for
it. It is queued once no open association is sending it and the settle window
has passed quietly since its last instance. Every state change is a
conditional UPDATE (compare-and-set on the old state), so several schedulers
and workers sharing one database (SQLite or PostgreSQL) never queue a series
twice nor run one job twice. A running job carries its worker's lease
(`dicom_node.store.leases`): when the worker's process dies, another worker
takes the job over once the lease has run out, counting it as an attempt.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import CalledAe, JobSettings
from dicom_node.logs import RepeatingFailure
from dicom_node.store.models import (
    Association,
    AssociationSeries,
    Export,
    InferenceRequest,
    InferenceRequestSeries,
    Instance,
    Job,
    Series,
    pipeline_names,
    utcnow,
)
from dicom_node.store.outbox import requeue_in
from dicom_node.store.wakeups import Wakeups

log = logging.getLogger(__name__)

ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "skipped", "superseded")


@dataclass(frozen=True)
class ResentSeries:
    """A series an association re-sent without anything new: whether it still waits for its job, and its latest job."""

    series_instance_uid: str
    pending: bool
    job_id: int | None
    job_state: str
    reexported: int = 0

    def __str__(self) -> str:
        if self.pending:
            return f"series {self.series_instance_uid} waits for its job"
        if self.job_id is None:
            return f"series {self.series_instance_uid} was stored only (its SOP classes start no job)"
        if self.job_state == "done" and self.reexported:
            return f"series {self.series_instance_uid} was already processed (job {self.job_id}): its {self.reexported} result export(s) are sent again"
        if self.job_state == "done":
            return (
                f"series {self.series_instance_uid} was already processed (job {self.job_id}): nothing new to process; "
                f"`dicom-node exports resend {self.job_id} --to DESTINATION` sends its results again"
            )
        return f"series {self.series_instance_uid} has nothing new; its job {self.job_id} is {self.job_state}"


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    series_id: int
    series_instance_uid: str
    study_instance_uid: str
    pipeline: str
    attempts: int
    worker: str
    input_incomplete: str = ""


@dataclass(frozen=True)
class EarlierResult:
    """The latest result an earlier job of the same series produced: its SR (relative to the data dir) and when it
    was made."""

    job_id: int
    sr_path: str
    finished_at: datetime


class JobQueue:
    """Association bookkeeping, the settle window, claiming and finishing jobs."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        node_name: str,
        lease_seconds: float = 30.0,
        max_attempts: int = 20,
        wakeups: Wakeups | None = None,
    ) -> None:
        self._sessions = sessions
        self.node_name = node_name
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.wakeups = wakeups or Wakeups()

    # Associations -------------------------------------------------------
    def open_association(self, calling_ae: str, called_ae: str, host: str, port: int) -> tuple[int, str]:
        with self._sessions.begin() as session:
            row = Association(
                uuid=str(uuid.uuid4()),
                node=self.node_name,
                calling_ae=calling_ae,
                called_ae=called_ae,
                peer_host=host,
                peer_port=port,
                lease_until=utcnow() + self.lease,
            )
            session.add(row)
            session.flush()
            return row.id, row.uuid

    def close_association(
        self,
        association_id: int,
        state: str,
        instances: int,
        nbytes: int,
        failures: int,
        resent: Collection[str] = (),
        reexport: bool = False,
    ) -> list[ResentSeries]:
        """Record how the association ended. A normal release completes every series it sent or re-sent (`resent`:
        series of which it sent instances that were already stored), so a series held back after an abort is
        processed now. With `reexport` (`dicom.reexport_resent`), a re-sent series whose job is done has that job's
        results sent again. Returns what became of the re-sent series that received nothing new."""
        now = utcnow()
        with self._sessions.begin() as session:
            session.execute(
                update(Association)
                .where(Association.id == association_id)
                .values(state=state, instances_received=instances, bytes_received=nbytes, failures=failures, ended_at=now)
            )
            sent = set(session.scalars(select(AssociationSeries.series_fk).where(AssociationSeries.association_fk == association_id)))
            rows = session.execute(select(Series.id, Series.series_instance_uid, Series.pending).where(Series.series_instance_uid.in_(list(resent)))).all()
            if state == "released" and (sent or rows):
                session.execute(update(Series).where(Series.id.in_(sent | {row.id for row in rows})).values(last_released_at=now))
            outcomes = []
            for series_id, uid, pending in rows:
                if series_id in sent:
                    continue
                latest = session.execute(
                    select(Job.id, Job.state).where(Job.series_fk == series_id).order_by(Job.id.desc()).limit(1)
                ).first()
                job_id, job_state = latest if latest else (None, "")
                again = 0
                if reexport and state == "released" and job_state == "done" and not pending:
                    reason = f"its series was sent again (association {association_id}; dicom.reexport_resent)"
                    again = requeue_in(session, self.wakeups, reason, Export.job_fk == job_id, Export.state.in_(("sent", "failed")))
                outcomes.append(ResentSeries(uid, pending, job_id, job_state, again))
            return outcomes

    def record_retrieve(self, association_id: int, originator_ae: str, message_id: int) -> None:
        """Mark the association as bringing the instances of a retrieve (a C-MOVE's Move Originator AE and Message
        ID; the node's own C-GET or WADO-RS): an inference request counts its arrivals by them. Once per association."""
        with self._sessions.begin() as session:
            session.execute(
                update(Association).where(Association.id == association_id).values(move_originator_ae=originator_ae[:16], move_message_id=message_id)
            )

    def close_interrupted_associations(self, with_receivers: bool = False) -> int:
        """At start-up: associations this node (by name, one process per name) had open were cut by its stop;
        `with_receivers`: also those of its receiving processes (`receivers.py`, named `<name>#<n>`), which start
        after it and stop with it.

        Running jobs are not touched here: they belong to whoever holds their
        lease, and are taken over by any worker once it has expired.
        """
        ours = Association.node == self.node_name
        if with_receivers:
            ours = or_(ours, Association.node.startswith(f"{self.node_name}#", autoescape=True))
        with self._sessions.begin() as session:
            cut = session.execute(
                update(Association).where(ours, Association.state == "open").values(state="interrupted", ended_at=utcnow())
            ).rowcount
        if cut:
            log.warning("%d association(s) of node %s were cut by a restart", cut, self.node_name)
        return cut

    # Settle window ------------------------------------------------------
    def queue_settled(
        self, settle_seconds: float, now: datetime | None = None, grace_seconds: float = 3600.0, settle_by_ae: Mapping[str, float] | None = None
    ) -> list[int]:
        """Queue one job per pending series that is quiet, no longer being sent and complete; return the new job ids.

        Quiet: nothing received for `settle_seconds`, or for the called AE's own settle time (`settle_by_ae`, by the
        called AE of the association that last sent the series).

        Complete: no association that ended abnormally (aborted, connection lost, cut by a restart, or open while
        its receiving process stopped renewing it) sent it new instances since a normal release last completed it.
        A half-sent series gives no result; once `grace_seconds` have passed quietly it is processed anyway, and its
        job says why its input may be incomplete (the result says so too).
        """
        now = now or utcnow()
        settle_by_ae = settle_by_ae or {}
        quiet_since = now - timedelta(seconds=min([settle_seconds, *settle_by_ae.values()]))
        receiver_alive = or_(Association.lease_until.is_(None), Association.lease_until > now)
        linked = and_(AssociationSeries.series_fk == Series.id, AssociationSeries.association_fk == Association.id)
        sending = exists().where(linked, Association.state == "open", receiver_alive)
        ended_abnormally = or_(Association.state.in_(("aborted", "interrupted")), and_(Association.state == "open", ~receiver_alive))
        held = exists().where(
            linked, ended_abnormally, or_(Series.last_released_at.is_(None), Association.started_at > Series.last_released_at)
        )
        overdue = Series.last_received_at <= now - timedelta(seconds=grace_seconds)
        # An inference request retrieving the series holds it until the PACS's count has come or its idle timeout ran
        # out, and, once it found the series partial, until it decided (in the same step) what that means for the job.
        retrieving = exists().where(
            InferenceRequestSeries.series_instance_uid == Series.series_instance_uid,
            InferenceRequestSeries.state.in_(("retrieving", "partial")),
            InferenceRequestSeries.request_fk == InferenceRequest.id,
            InferenceRequest.state.in_(("finding", "retrieving")),  # a request that ended (cancelled, failed) holds nothing
        )
        # A request that ended its retrieve as partial after the last arrival speaks for the series as it is: its job
        # says the input is incomplete, or, where the request failed for it (retrieve.partial = 'fail'), none is made.
        partial = (
            select(InferenceRequestSeries.reason, InferenceRequest.state)
            .join(InferenceRequest, InferenceRequest.id == InferenceRequestSeries.request_fk)
            .where(
                InferenceRequestSeries.series_instance_uid == Series.series_instance_uid,
                InferenceRequestSeries.state == "partial",
                InferenceRequest.updated_at >= Series.last_received_at,
            )
            .order_by(InferenceRequest.id.desc())
            .limit(1)
        )
        with self._sessions() as session:
            candidates = session.execute(
                select(
                    Series.id,
                    Series.last_received_at,
                    held.label("held"),
                    partial.with_only_columns(InferenceRequestSeries.reason).scalar_subquery().label("partial"),
                    partial.with_only_columns(InferenceRequest.state).scalar_subquery().label("request_state"),
                ).where(
                    Series.pending.is_(True),
                    Series.last_received_at <= quiet_since,
                    ~sending,
                    ~retrieving,
                    or_(~held, overdue),
                )
            ).all()
        if settle_by_ae:
            called = self._last_called_aes([row[0] for row in candidates])
            candidates = [
                row for row in candidates if row[1] <= now - timedelta(seconds=settle_by_ae.get(called.get(row[0], ""), settle_seconds))
            ]
        created = []
        for series_id, last_received, incomplete, partial_reason, request_state in candidates:
            if partial_reason and request_state == "failed":
                self._leave_unprocessed(series_id, last_received, f"its retrieve came partial ({partial_reason}) and retrieve.partial = 'fail'")
                continue
            reason = f"not completed by a normal release within {grace_seconds:g} s" if incomplete else ""
            if partial_reason:
                reason = f"a partial retrieve from the PACS: {partial_reason}"
            created.extend(self._queue_series(series_id, last_received, reason))
        return created

    def _leave_unprocessed(self, series_id: int, last_received: datetime, why: str) -> None:
        """No job for the series as it is now; new instances make it pending again."""
        with self._sessions.begin() as session:
            uid = session.scalar(
                update(Series)
                .where(Series.id == series_id, Series.pending.is_(True), Series.last_received_at == last_received)
                .values(pending=False)
                .returning(Series.series_instance_uid)
            )
        if uid is not None:
            log.warning("series %s: not processed: %s", uid, why)

    def _last_called_aes(self, series_ids: list[int]) -> dict[int, str]:
        """By series id, the called AE of the association that last sent to it."""
        if not series_ids:
            return {}
        with self._sessions() as session:
            rows = session.execute(
                select(AssociationSeries.series_fk, Association.called_ae)
                .join(Association, Association.id == AssociationSeries.association_fk)
                .where(AssociationSeries.series_fk.in_(series_ids))
                .order_by(Association.started_at, Association.id)
            ).all()
        return {series_id: called for series_id, called in rows}  # the latest wins

    def _queue_series(self, series_id: int, last_received: datetime, incomplete: str = "") -> list[int]:
        """One job per pipeline of the series (its called AE's); each supersedes the earlier jobs of its pipeline
        (and the first one those of pipelines the series no longer goes to)."""
        with self._sessions.begin() as session:
            claimed = session.execute(
                update(Series)
                .where(Series.id == series_id, Series.pending.is_(True), Series.last_received_at == last_received)
                .values(pending=False)
            ).rowcount
            if not claimed:
                return []  # more data arrived, or another scheduler queued it
            series = session.get_one(Series, series_id)
            count = session.scalar(select(func.count()).select_from(Instance).where(Instance.series_fk == series_id)) or 0
            jobs = {
                name: Job(series_fk=series_id, pipeline=name, state="queued", instance_count=count, input_incomplete=incomplete, steps={}, result={})
                for name in pipeline_names(series.pipeline)
            }
            if not jobs:
                return []  # indexed without a called AE's pipelines: nothing to run
            session.add_all(jobs.values())
            session.flush()
            earlier = session.execute(
                select(Job.id, Job.pipeline).where(
                    Job.series_fk == series_id, Job.id.not_in([job.id for job in jobs.values()]), Job.state.in_(("queued", "running", "done"))
                )
            ).all()
            first = next(iter(jobs.values()))
            for previous_id, pipeline in earlier:
                self._supersede(session, previous_id, jobs.get(pipeline, first).id)
            self.wakeups.notify_in(session, "jobs")
            previous = [previous_id for previous_id, _ in earlier]
            for name, job in jobs.items():
                log.info(
                    "series %s: job %d queued (%d instances, pipeline %s)%s%s",
                    series.series_instance_uid,
                    job.id,
                    count,
                    name,
                    f", superseding job(s) {previous}" if previous and job is first else "",
                    f"; its input may be incomplete: {incomplete}" if incomplete else "",
                )
            return [job.id for job in jobs.values()]

    @staticmethod
    def _supersede(session: Session, previous: int, by: int) -> None:
        session.execute(
            update(Job)
            .where(Job.id == previous)
            .values(
                state="superseded",
                superseded_by=by,
                reason=f"superseded by job {by}: the series changed (instances arrived, were replaced or moved to another series)",
                finished_at=utcnow(),
            )
        )
        session.execute(
            update(Export).where(Export.job_fk == previous, Export.state == "pending").values(state="cancelled", last_error=f"job superseded by job {by}")
        )

    # Workers ------------------------------------------------------------
    def claim(self, worker: str, now: datetime | None = None) -> ClaimedJob | None:
        """Take the oldest runnable job, or None; safe against other workers and processes.

        Runnable: queued and due, or running under a lease that has expired (its
        worker's process died). A job taken over counts an attempt; past
        `max_attempts` it fails with the reason instead of being run again.
        On PostgreSQL the candidates are locked with SKIP LOCKED, so concurrent
        workers do not even try the same rows; on SQLite the compare-and-set
        alone guarantees that one worker wins.
        """
        now = now or utcnow()
        runnable = or_(
            and_(Job.state == "queued", or_(Job.not_before.is_(None), Job.not_before <= now)),
            and_(Job.state == "running", Job.lease_until < now),
        )
        with self._sessions.begin() as session:
            candidates = session.execute(
                select(Job.id, Job.state, Job.worker, Job.attempts)
                .where(runnable)
                .order_by(Job.created_at, Job.id)
                .limit(5)
                .with_for_update(skip_locked=True)
            ).all()
            for job_id, state, previous, attempts in candidates:
                unchanged = and_(Job.id == job_id, Job.state == state, Job.worker == previous)
                if state == "running":
                    unchanged = and_(unchanged, Job.lease_until < now)
                    if attempts >= self.max_attempts:
                        self._fail_abandoned(session, job_id, unchanged, previous, attempts, now)
                        continue
                    log.warning("job %d: its worker %s stopped renewing its lease; %s takes it over", job_id, previous, worker)
                reason = f"taken over from {previous}, whose process stopped" if state == "running" else ""
                taken = session.execute(
                    update(Job)
                    .where(unchanged)
                    .values(
                        state="running",
                        worker=worker,
                        started_at=now,
                        attempts=Job.attempts + 1,
                        reason=reason,
                        not_before=None,
                        lease_until=now + self.lease,
                    )
                ).rowcount
                if not taken:
                    continue
                job = session.get_one(Job, job_id)
                series = session.get_one(Series, job.series_fk)
                return ClaimedJob(
                    id=job.id,
                    series_id=series.id,
                    series_instance_uid=series.series_instance_uid,
                    study_instance_uid=series.study.study_instance_uid,
                    pipeline=job.pipeline,
                    attempts=job.attempts,
                    worker=worker,
                    input_incomplete=job.input_incomplete,
                )
        return None

    def _fail_abandoned(self, session: Session, job_id: int, unchanged: Any, previous: str, attempts: int, now: datetime) -> None:
        reason = (
            f"failed after {attempts} attempt(s): the process running it stopped each time (last {previous}); "
            f"jobs.max_attempts is {self.max_attempts}"
        )
        if session.execute(update(Job).where(unchanged).values(state="failed", reason=reason, finished_at=now, lease_until=None)).rowcount:
            log.error("job %d %s", job_id, reason)

    def instance_paths(self, series_id: int) -> list[str]:
        return [path for _, path in self.instances(series_id)]

    def instances(self, series_id: int) -> list[tuple[str, str]]:
        """(SOP Instance UID, path relative to the data dir) of every instance of the series."""
        with self._sessions() as session:
            rows = session.execute(select(Instance.sop_instance_uid, Instance.path).where(Instance.series_fk == series_id).order_by(Instance.id))
            return [(uid, path) for uid, path in rows]

    def earlier_result(self, job: ClaimedJob, sr_of: Callable[[dict[str, Any]], str | None]) -> EarlierResult | None:
        """The latest result of an earlier job of the job's series and pipeline (done, or superseded after it was
        done) that has an SR, if any; `sr_of` reads a stored result's SR path (the pipeline's manifest knows it)."""
        with self._sessions() as session:
            rows = session.execute(
                select(Job.id, Job.result, Job.finished_at)
                .where(Job.series_fk == job.series_id, Job.pipeline == job.pipeline, Job.id < job.id, Job.state.in_(("done", "superseded")))
                .order_by(Job.id.desc())
            )
            for job_id, result, finished_at in rows:
                sr = sr_of(result) if result else None
                if sr and finished_at is not None:
                    return EarlierResult(job_id, sr, finished_at)
        return None

    def finish(
        self,
        job: ClaimedJob,
        state: str,
        reason: str = "",
        steps: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        on_done: Callable[[Session], None] | None = None,
    ) -> bool:
        """Record the end of a running job; False if it was superseded or taken over meanwhile (its results must
        not be exported: the job's current owner, or the newer job, produces the results that count).

        `on_done` runs in the same transaction (the outbox rows of a done job), so a crash leaves either a done
        job with all its exports queued, or a running job that another worker takes over once its lease expired.
        """
        values: dict[str, Any] = dict(state=state, reason=reason, finished_at=utcnow(), lease_until=None)
        if steps is not None:
            values["steps"] = steps
        if result is not None:
            values["result"] = result
        with self._sessions.begin() as session:
            if not session.execute(update(Job).where(*self._owned(job)).values(**values)).rowcount:
                return False
            if on_done is not None:
                on_done(session)
            return True

    def postpone(self, job: ClaimedJob, reason: str, delay_seconds: float, steps: dict[str, Any] | None = None) -> bool:
        """Put a running job back in the queue for later (an inference server was unavailable)."""
        values: dict[str, Any] = dict(
            state="queued", reason=reason, worker="", lease_until=None, not_before=utcnow() + timedelta(seconds=delay_seconds)
        )
        if steps is not None:
            values["steps"] = steps
        with self._sessions.begin() as session:
            return bool(session.execute(update(Job).where(*self._owned(job)).values(**values)).rowcount)

    @staticmethod
    def _owned(job: ClaimedJob) -> tuple[Any, ...]:
        """The job is still running under this claim (not superseded, not taken over by another worker)."""
        return Job.id == job.id, Job.state == "running", Job.worker == job.worker

    def retry(self, job_id: int) -> bool:
        """Re-queue a finished job by hand (`dicom-node jobs retry`)."""
        with self._sessions.begin() as session:
            requeued = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state.in_(("failed", "skipped", "done")))
                .values(state="queued", reason="retried by an operator", not_before=None, worker="", attempts=0)
            ).rowcount
            if requeued:
                self.wakeups.notify_in(session, "jobs")
        return bool(requeued)


def schedule(
    queue: JobQueue,
    settings: JobSettings,
    released: threading.Event,
    stopping: threading.Event,
    called_aes: Callable[[], list[CalledAe]] = list,
) -> None:
    """The scheduler thread: queue settled series whenever an association ends (`released`), and at least every poll
    (a settle window running out). `called_aes`: the called AEs in force now, for their own settle times."""
    failures = RepeatingFailure(log, "scheduler: queueing settled series")
    while not stopping.is_set():
        released.clear()
        by_ae = {called.ae_title: called.settle_seconds for called in called_aes() if called.settle_seconds is not None}
        settle = settings.settle_seconds
        failures.run(lambda: queue.queue_settled(settle, grace_seconds=settings.incomplete_grace_seconds, settle_by_ae=by_ae))  # wakes the workers
        shortest = min([settle, *by_ae.values()])
        released.wait(min(settings.poll_seconds, max(shortest / 2, 0.1)) if shortest > 0 else settings.poll_seconds)
