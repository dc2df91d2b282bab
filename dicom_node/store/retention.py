"""Retention: delete old series, and the oldest ones when the disk runs low, so the node cleans up after itself.

A series is deletable only when nothing is still to be done with it: no
association is sending it, it is not waiting for its job (pending), none of its
jobs is queued or running and none of their exports is pending or sending. Its
instances, jobs, exports and result folders go together, in this order: the
rows in one transaction (a compare-and-set on the series' last reception, so a
series that received an instance meanwhile stays), then the files. A crash in
between leaves files without rows, never rows without files.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import RetentionSettings
from dicom_node.store.models import Association, AssociationSeries, Export, Instance, Job, Patient, Series, Study, utcnow

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    """What one pass deleted."""

    series: list[str] = field(default_factory=list)
    nbytes: int = 0


def free_mb(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**20


class Retention:
    def __init__(
        self, sessions: sessionmaker[Session], settings: RetentionSettings, data_dir: Path, forget: Callable[[str], None] = lambda uid: None
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        self.data_dir = data_dir
        self._forget = forget  # the SCP's indexer caches series ids: a deleted series must be created anew

    def _deletable(self) -> list[tuple[int, str, datetime | None]]:
        """(id, UID, last reception) of every series nothing is still to be done with, oldest first."""
        open_job = exists().where(Job.series_fk == Series.id, Job.state.in_(("queued", "running")))
        open_export = exists().where(
            Export.job_fk == Job.id, Job.series_fk == Series.id, Export.state.in_(("pending", "sending"))
        )
        sending = exists().where(
            and_(AssociationSeries.series_fk == Series.id, AssociationSeries.association_fk == Association.id, Association.state == "open")
        )
        with self._sessions() as session:
            return [
                (row.id, row.series_instance_uid, row.last_received_at)
                for row in session.execute(
                    select(Series.id, Series.series_instance_uid, Series.last_received_at)
                    .where(Series.pending.is_(False), ~open_job, ~open_export, ~sending)
                    .order_by(Series.last_received_at, Series.id)
                )
            ]

    def sweep(self, now: datetime | None = None) -> Sweep:
        """One pass: series older than `max_age_days`, then the oldest until `min_free_disk_mb` is free again."""
        now = now or utcnow()
        done = Sweep()
        candidates = self._deletable()
        if self.settings.max_age_days:
            cutoff = now - timedelta(days=self.settings.max_age_days)
            for series_id, uid, received in candidates:
                if received is not None and received < cutoff and self._delete(series_id, uid, received, done):
                    log.info("retention: series %s deleted (last received %s, older than %g days)", uid, received, self.settings.max_age_days)
        if self.settings.min_free_disk_mb:
            for series_id, uid, received in candidates:
                if free_mb(self.data_dir) >= self.settings.min_free_disk_mb:
                    break
                if uid not in done.series and self._delete(series_id, uid, received, done):
                    log.info("retention: series %s deleted (free disk below %d MB)", uid, self.settings.min_free_disk_mb)
            if free_mb(self.data_dir) < self.settings.min_free_disk_mb:
                log.warning(
                    "retention: free disk still below %d MB: the remaining series have open jobs or exports, or are being received",
                    self.settings.min_free_disk_mb,
                )
        return done

    def _delete(self, series_id: int, uid: str, received: datetime | None, done: Sweep) -> bool:
        with self._sessions.begin() as session:
            series = session.get(Series, series_id)
            if series is None or series.pending or series.last_received_at != received:
                return False  # new data arrived since the candidates were read: keep it
            files = list(session.scalars(select(Instance.path).where(Instance.series_fk == series_id)))
            jobs = list(session.scalars(select(Job.id).where(Job.series_fk == series_id)))
            study_id, patient_id = series.study_fk, series.study.patient_fk
            session.execute(delete(Export).where(Export.job_fk.in_(jobs)))
            session.execute(delete(Job).where(Job.id.in_(jobs)))
            session.execute(delete(Instance).where(Instance.series_fk == series_id))
            session.execute(delete(AssociationSeries).where(AssociationSeries.series_fk == series_id))
            session.execute(delete(Series).where(Series.id == series_id))
            if not session.scalar(select(func.count()).select_from(Series).where(Series.study_fk == study_id)):
                session.execute(delete(Study).where(Study.id == study_id))
                if not session.scalar(select(func.count()).select_from(Study).where(Study.patient_fk == patient_id)):
                    session.execute(delete(Patient).where(Patient.id == patient_id))
        self._forget(uid)
        for relpath in files:
            path = self.data_dir / relpath
            done.nbytes += path.stat().st_size if path.exists() else 0
            path.unlink(missing_ok=True)
            _remove_empty_parents(path.parent, self.data_dir / "instances")
        for job_id in jobs:
            shutil.rmtree(self.data_dir / "results" / str(job_id), ignore_errors=True)
        done.series.append(uid)
        return True


def _remove_empty_parents(folder: Path, root: Path) -> None:
    """Remove the series and study folders once empty (an instance arriving meanwhile keeps them)."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
