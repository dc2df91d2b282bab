"""The node's state metrics read from the database at each scrape (`metrics.py` serves them beside its own
event metrics): the database is the truth shared by every node process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.models import Export, Job, Series, utcnow

JOB_STATES = ("queued", "running", "done", "failed", "skipped", "superseded")
EXPORT_STATES = ("pending", "sending", "sent", "failed", "cancelled", "superseded")  # "sending": the outbox lease


class DatabaseCollector(Collector):
    """Jobs by state, queue depth and exports by state, counted in the database at each scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self._sessions() as session:
            jobs = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
            exports = dict(session.execute(select(Export.state, func.count()).group_by(Export.state)).all())
            runnable = session.scalar(
                select(func.count()).select_from(Job).where(Job.state == "queued", or_(Job.not_before.is_(None), Job.not_before <= now))
            )
            pending_series = session.scalar(select(func.count()).select_from(Series).where(Series.pending.is_(True)))
            oldest = session.scalar(select(func.min(Job.created_at)).where(Job.state == "queued"))
            oldest_export = session.scalar(select(func.min(Export.created_at)).where(Export.state.in_(("pending", "sending"))))
            last_received = session.scalar(select(func.max(Series.last_received_at)))
        job_gauge = GaugeMetricFamily("dicom_node_jobs", "Jobs in the database by state.", labels=["state"])
        for state in sorted(set(JOB_STATES) | set(jobs)):
            job_gauge.add_metric([state], jobs.get(state, 0))
        yield job_gauge
        export_gauge = GaugeMetricFamily("dicom_node_exports", "Result exports in the outbox by state.", labels=["state"])
        for state in sorted(set(EXPORT_STATES) | set(exports)):
            export_gauge.add_metric([state], exports.get(state, 0))
        yield export_gauge
        yield GaugeMetricFamily("dicom_node_queue_depth", "Queued jobs a worker may claim now.", value=runnable or 0)
        yield GaugeMetricFamily("dicom_node_series_pending", "Series received and waiting for their settle window.", value=pending_series or 0)
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("dicom_node_oldest_queued_job_age_seconds", "Age of the oldest queued job (0 when none).", value=age)
        export_age = (now - oldest_export).total_seconds() if oldest_export is not None else 0.0
        yield GaugeMetricFamily(
            "dicom_node_oldest_pending_export_age_seconds", "Age of the oldest export not yet sent (pending or sending; 0 when none).", value=export_age
        )
        if last_received is not None:  # no sample before the first instance: "nothing for 2 hours" is not "never"
            yield GaugeMetricFamily(
                "dicom_node_last_instance_received_timestamp_seconds",
                "Unix time of the newest instance any receiving process stored (from the index, so every process and restart agree).",
                value=last_received.replace(tzinfo=timezone.utc).timestamp(),
            )
