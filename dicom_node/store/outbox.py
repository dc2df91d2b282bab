"""The durable outbox: one `export` row per result object and destination.

The worker enqueues a job's result files in the same database that holds the
job, so a result is either never produced or will be sent: a crash, a PACS
outage or a restart loses nothing. States:

  pending   due at `next_attempt_at`
  sending   claimed by `owner` until `next_attempt_at` (a lease its process
            renews, `dicom_node.store.leases`): a row whose sender died is
            claimed by any sender once the lease has run out
  sent      the PACS answered success or a warning (kept in last_status/last_error)
  failed    refused for good (status and reason kept), or still not delivered
            after `export.retry_horizon_seconds`; `retry` puts it back
  cancelled its job was superseded by newer data: never sent
  superseded sent, then replaced by a newer result of the same series that no longer has this object (new
            content gets new UIDs, so the PACS keeps both: for a destination with `rejection_notes` the newer job
            also sends an IHE IOCM rejection note that withdraws it)

Re-sending an object that may already have arrived is harmless: result UIDs
are deterministic, so the PACS stores it once. Every transition is a
compare-and-set on the old state, as in the job queue.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.uid import KeyObjectSelectionDocumentStorage
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import ExportSettings
from dicom_node.outcomes import Outcome, StoreResult
from dicom_node.store.models import Export, Instance, Job, utcnow
from dicom_node.store.wakeups import Wakeups

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultObject:
    """A result file the worker wrote (absolute, or relative to the data dir) and the UIDs it carries."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str

    @classmethod
    def from_file(cls, path: Path, data_dir: Path) -> ResultObject:
        """Read the UIDs from the file's header; keep the path relative to `data_dir` when it lies inside."""
        header = dcmread(Path(data_dir) / path, stop_before_pixels=True, specific_tags=["SOPInstanceUID", "SOPClassUID"])
        path = Path(path)
        if path.is_absolute() and path.resolve().is_relative_to(Path(data_dir).resolve()):
            path = path.resolve().relative_to(Path(data_dir).resolve())
        return cls(path, str(header.SOPInstanceUID), str(header.SOPClassUID))


@dataclass(frozen=True)
class SupersededExport:
    """An object an earlier job sent to `destination` that a newer result replaces."""

    destination: str
    sop_instance_uid: str
    path: Path
    job_id: int


@dataclass(frozen=True)
class ClaimedExport:
    id: int
    job_id: int
    destination: str
    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    attempts: int
    created_at: datetime
    owner: str


class Outbox:
    def __init__(self, sessions: sessionmaker[Session], settings: ExportSettings, data_dir: Path, wakeups: Wakeups | None = None) -> None:
        self._sessions = sessions
        self.settings = settings
        self.data_dir = Path(data_dir).resolve()
        self.wakeups = wakeups or Wakeups()

    def _stored_path(self, path: Path) -> str:
        """Relative to the data dir when inside it, so the data dir can move; absolute otherwise."""
        path = (self.data_dir / path).resolve()
        return str(path.relative_to(self.data_dir)) if path.is_relative_to(self.data_dir) else str(path)

    def enqueue(self, job_id: int, objects: list[ResultObject], destinations: list[str]) -> int:
        """Add one pending row per (object, destination) not already there; return how many were added."""
        with self._sessions.begin() as session:
            return self.enqueue_in(session, job_id, objects, destinations)

    def enqueue_in(self, session: Session, job_id: int, objects: list[ResultObject], destinations: list[str]) -> int:
        """`enqueue` inside the caller's transaction: the worker's, which also marks the job done.

        Idempotent: a worker that enqueues again after a crash adds nothing,
        and rows already sent, failed or in flight are left as they are.
        """
        existing = {(uid, dest) for uid, dest in session.execute(select(Export.sop_instance_uid, Export.destination).where(Export.job_fk == job_id))}
        now = utcnow()
        added = 0
        for obj in objects:
            for destination in destinations:
                if (obj.sop_instance_uid, destination) in existing:
                    continue
                session.add(
                    Export(
                        job_fk=job_id,
                        destination=destination,
                        sop_instance_uid=obj.sop_instance_uid,
                        sop_class_uid=obj.sop_class_uid,
                        path=self._stored_path(obj.path),
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                        last_error="",
                        created_at=now,
                    )
                )
                existing.add((obj.sop_instance_uid, destination))
                added += 1
        if added:
            self.wakeups.notify_in(session, "exports")
            log.info("job %d: %d export(s) queued for %s", job_id, added, ", ".join(destinations))
        return added

    def supersede_in(self, session: Session, job_id: int, series_id: int, pipeline: str, kept: Collection[str]) -> list[SupersededExport]:
        """In the finishing job's transaction: mark the results that earlier jobs of the series' `pipeline` sent, and
        that this job (`kept`: its objects' SOP Instance UIDs) does not produce again, as superseded; return them.
        Another pipeline's results of the series stand beside this one's.

        Only results are ever superseded: the series' own instances (sent along to destinations with
        include_source, whether or not this job sends them) are the input, and an earlier rejection note has
        already done its work; withdrawing either would take the images, or the withdrawal, out of the PACS."""
        source = select(Instance.sop_instance_uid).where(Instance.series_fk == series_id)
        rows = session.execute(
            select(Export.id, Export.destination, Export.sop_instance_uid, Export.path, Export.job_fk)
            .join(Job, Job.id == Export.job_fk)
            .where(
                Job.series_fk == series_id,
                Job.pipeline == pipeline,
                Job.id != job_id,
                Export.state == "sent",
                Export.sop_instance_uid.not_in(list(kept)),
                Export.sop_instance_uid.not_in(source),
                Export.sop_class_uid != KeyObjectSelectionDocumentStorage,
            )
            .order_by(Export.id)
        ).all()
        if rows:
            session.execute(
                update(Export)
                .where(Export.id.in_([row.id for row in rows]), Export.state == "sent")
                .values(state="superseded", last_error=f"replaced by the result of job {job_id}")
            )
            log.info("job %d: %d object(s) sent for earlier jobs of its series are superseded", job_id, len(rows))
        return [SupersededExport(row.destination, row.sop_instance_uid, self.data_dir / row.path, row.job_fk) for row in rows]

    def enqueue_job_in(
        self, session: Session, job_id: int, series_id: int, objects: list[ResultObject], destinations: list[str], with_source: set[str]
    ) -> int:
        """A job's results for `destinations` and, for those in `with_source` (destinations with include_source),
        the instances of its source series as indexed now, in the caller's transaction."""
        added = self.enqueue_in(session, job_id, objects, destinations)
        source_destinations = [name for name in destinations if name in with_source]
        if source_destinations:
            added += self.enqueue_in(session, job_id, self.source_objects_in(session, series_id), source_destinations)
        return added

    @staticmethod
    def source_objects_in(session: Session, series_id: int) -> list[ResultObject]:
        """The stored instances of a series, as outbox objects (paths relative to the data dir)."""
        rows = session.execute(
            select(Instance.path, Instance.sop_instance_uid, Instance.sop_class_uid).where(Instance.series_fk == series_id).order_by(Instance.id)
        )
        return [ResultObject(Path(path), uid, sop_class) for path, uid, sop_class in rows]

    def claim_due(self, destination: str, owner: str, now: datetime | None = None, limit: int | None = None) -> list[ClaimedExport]:
        """Claim up to `limit` rows due for `destination` for `owner` (pending, or sending with an expired lease).

        Rows of superseded jobs are cancelled here rather than sent: a newer
        job for the series will produce the results that count. On PostgreSQL
        the candidates are locked with SKIP LOCKED, so senders of several
        processes split the rows instead of racing for the same ones.
        """
        now = now or utcnow()
        limit = limit or self.settings.batch_size
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        claimed: list[ClaimedExport] = []
        with self._sessions.begin() as session:
            candidates = session.execute(
                select(Export.id, Export.state, Export.owner, Job.state)
                .join(Job, Job.id == Export.job_fk)
                .where(Export.destination == destination, Export.state.in_(("pending", "sending")), Export.next_attempt_at <= now)
                .order_by(Export.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=Export)
            ).all()
            for export_id, state, previous, job_state in candidates:
                superseded = job_state == "superseded"
                values: dict[str, Any] = (
                    dict(state="cancelled", owner="", last_error="job superseded: newer data arrived for the series")
                    if superseded
                    else dict(state="sending", owner=owner, next_attempt_at=lease_until)
                )
                taken = session.execute(
                    update(Export).where(Export.id == export_id, Export.state == state, Export.next_attempt_at <= now).values(**values)
                ).rowcount
                if not taken or superseded:
                    continue  # another sender took it, or it must never be sent
                row = session.get_one(Export, export_id)
                if state == "sending":
                    log.warning("export %d to %s: its sender %s stopped while sending it; %s sends it again", export_id, destination, previous, owner)
                claimed.append(
                    ClaimedExport(
                        row.id,
                        row.job_fk,
                        row.destination,
                        self.data_dir / row.path,
                        row.sop_instance_uid,
                        row.sop_class_uid,
                        row.attempts,
                        row.created_at,
                        owner,
                    )
                )
        return claimed

    def record(self, claimed: ClaimedExport, result: StoreResult, now: datetime | None = None) -> str:
        """Record one attempt's outcome on a claimed row; return the row's new state."""
        now = now or utcnow()
        values: dict[str, Any] = dict(attempts=Export.attempts + 1, last_status=result.status, last_error=result.reason)
        if result.outcome is Outcome.DELIVERED:
            values.update(state="sent", sent_at=now)
        elif result.outcome is Outcome.REFUSED:
            values.update(state="failed")
        else:
            values.update(self._reschedule(claimed, result.reason, now))
        with self._sessions.begin() as session:
            recorded = session.execute(
                update(Export).where(Export.id == claimed.id, Export.state == "sending", Export.owner == claimed.owner).values(owner="", **values)
            ).rowcount
            if not recorded:  # our lease ran out and another sender took the row: its outcome is the one that counts
                state = session.scalars(select(Export.state).where(Export.id == claimed.id)).one()
                log.warning("export %d to %s: the lease was lost to another sender; this attempt is not recorded", claimed.id, claimed.destination)
                return state
        state = values["state"]
        if state == "failed":
            log.error("export %d (%s) to %s failed: %s", claimed.id, claimed.sop_instance_uid, claimed.destination, values["last_error"])
        elif state == "pending":
            log.warning("export %d to %s: %s; next attempt at %s", claimed.id, claimed.destination, result.reason, values["next_attempt_at"])
        return state

    def _reschedule(self, claimed: ClaimedExport, reason: str, now: datetime) -> dict[str, Any]:
        """Exponential backoff, the last attempt at the horizon, then failed."""
        deadline = claimed.created_at + timedelta(seconds=self.settings.retry_horizon_seconds)
        attempts = claimed.attempts + 1
        if now >= deadline:
            waited = (now - claimed.created_at).total_seconds()
            return dict(state="failed", last_error=f"not delivered after {attempts} attempt(s) over {waited:.0f} s: {reason}")
        delay = min(self.settings.retry_initial_seconds * 2 ** (attempts - 1), self.settings.retry_max_seconds)
        return dict(state="pending", next_attempt_at=min(now + timedelta(seconds=delay), deadline))

    def fail_unconfigured(self, configured: set[str]) -> int:
        """Fail rows whose destination is no longer configured: visible, and retriable once it is back."""
        with self._sessions.begin() as session:
            names = set(session.scalars(select(Export.destination).where(Export.state == "pending").distinct())) - configured
            count = 0
            for name in sorted(names):
                count += session.execute(
                    update(Export)
                    .where(Export.state == "pending", Export.destination == name)
                    .values(state="failed", last_error=f"destination {name!r} is not in the configuration")
                ).rowcount
                log.error("exports to %r failed: that destination is not in the configuration", name)
        return count

    def retry(self, export_id: int) -> bool:
        """Send a failed (or already sent) export again, with a fresh retry horizon."""
        return self._requeue(Export.id == export_id, Export.state.in_(("failed", "sent"))) == 1

    def retry_failed(self) -> int:
        """Send every failed export again, with a fresh retry horizon; return how many."""
        return self._requeue(Export.state == "failed")

    def _requeue(self, *conditions: Any) -> int:
        with self._sessions.begin() as session:
            return requeue_in(session, self.wakeups, "retried by an operator", *conditions)


def requeue_in(session: Session, wakeups: Wakeups, reason: str, *conditions: Any) -> int:
    """Put the matching exports back to pending, due now with a fresh retry horizon, in the caller's transaction;
    the senders are woken when it commits. Returns how many."""
    now = utcnow()
    count = session.execute(
        update(Export).where(*conditions).values(state="pending", attempts=0, next_attempt_at=now, created_at=now, last_error=reason)
    ).rowcount
    if count:
        wakeups.notify_in(session, "exports")
    return count
