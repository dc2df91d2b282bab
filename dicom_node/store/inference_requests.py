"""Inference requests as rows: created by the API or the CLI, worked on one step at a time by any process.

A request moves queued -> finding -> retrieving -> processing -> exporting ->
done (or failed, or cancelled). Whoever works on a step holds the row under a
lease (`owner`, `lease_until`) taken by compare-and-set, as jobs and exports
are: a process that dies stops renewing it and any process resumes the
request once it has run out. Between steps the row is free and due at
`next_attempt_at`, so waiting (for instances, a job, exports, a PACS that is
down) holds no thread. Every step can be repeated: a resumed retrieve fetches
only what is still missing.

While a series is `retrieving` the scheduler does not queue its job
(`JobQueue.queue_settled`): completeness is the PACS's count plus an idle
timeout, not the end of an association.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.models import (
    Association,
    Export,
    InferenceRequest,
    InferenceRequestSeries,
    Instance,
    Job,
    Series,
    utcnow,
)

log = logging.getLogger(__name__)

ACTIVE_STATES = ("queued", "finding", "retrieving", "processing", "exporting")
FINAL_STATES = ("done", "failed", "cancelled")
STATES = ACTIVE_STATES + FINAL_STATES


@dataclass(frozen=True)
class StudyQuery:
    """What to find: a study (optionally one series), an accession number, or a patient within a study date range."""

    study_instance_uid: str = ""
    series_instance_uid: str = ""
    accession_number: str = ""
    patient_id: str = ""
    study_date_from: str = ""
    study_date_to: str = ""

    @property
    def study_dates(self) -> str:
        """StudyDate as a C-FIND range ('20200101-'), or '' for any date."""
        return f"{self.study_date_from}-{self.study_date_to}" if self.study_date_from or self.study_date_to else ""

    def __str__(self) -> str:
        """The keys asked for, as an operator compares them with the PACS's: 'StudyDate=20200101-, PatientID=P1'."""
        keys = {
            "StudyDate": self.study_dates,
            "AccessionNumber": self.accession_number,
            "PatientID": self.patient_id,
            "StudyInstanceUID": self.study_instance_uid,
            "SeriesInstanceUID": self.series_instance_uid,
        }
        return ", ".join(f"{keyword}={value}" for keyword, value in keys.items() if value)


@dataclass(frozen=True)
class RequestSpec:
    """A validated request (`web/inference.py` and the CLI build it)."""

    transaction_id: str
    query: StudyQuery
    source: str
    pipelines: list[str]
    destinations: list[str] = field(default_factory=list)
    priority: int = 128
    force: bool = False


@dataclass(frozen=True)
class ClaimedRequest:
    id: int
    transaction_id: str
    state: str
    query: StudyQuery
    source: str
    pipelines: list[str]
    destinations: list[str]
    force: bool
    message_id: int
    attempts: int
    created_at: datetime
    retrieve_ended_at: datetime | None
    owner: str


def _message_id(request_id: int) -> int:
    """The request's DIMSE Message ID: unique among the last 65535 requests (a Message ID is 16 bits)."""
    return request_id % 0xFFFF + 1


class InferenceRequests:
    def __init__(self, sessions: sessionmaker[Session], lease_seconds: float = 60.0) -> None:
        self._sessions = sessions
        self.lease = timedelta(seconds=lease_seconds)

    # Creating, cancelling ---------------------------------------------------------
    def create(self, spec: RequestSpec) -> tuple[int, bool]:
        """Add the request; (its id, True), or (the id of the request with that transactionID, False)."""
        try:
            with self._sessions.begin() as session:
                row = InferenceRequest(
                    transaction_id=spec.transaction_id,
                    priority=spec.priority,
                    state="queued",
                    inputs=asdict(spec.query),
                    source=spec.source,
                    pipelines=spec.pipelines,
                    destinations=spec.destinations,
                    force=spec.force,
                    owner="",
                    attempts=0,
                    partial=False,
                    errors=[],
                    next_attempt_at=utcnow(),
                )
                session.add(row)
                session.flush()
                row.message_id = _message_id(row.id)
                log.info("inference request %d (%s) queued: %s from %s", row.id, spec.transaction_id, _describe(spec.query), spec.source)
                return row.id, True
        except IntegrityError:
            existing = self.find(spec.transaction_id)
            if existing is None:
                raise
            return existing, False

    def find(self, transaction_id: str) -> int | None:
        with self._sessions() as session:
            return session.scalar(select(InferenceRequest.id).where(InferenceRequest.transaction_id == transaction_id))

    def cancel(self, request_id: int) -> bool:
        """Cancel an unfinished request; its series no longer hold their jobs back (what came is processed as usual)."""
        with self._sessions.begin() as session:
            cancelled = session.execute(
                update(InferenceRequest)
                .where(InferenceRequest.id == request_id, InferenceRequest.state.in_(ACTIVE_STATES))
                .values(state="cancelled", finished_at=utcnow(), updated_at=utcnow(), owner="", lease_until=None)
            ).rowcount
            if cancelled:
                session.execute(
                    update(InferenceRequestSeries)
                    .where(InferenceRequestSeries.request_fk == request_id, InferenceRequestSeries.state.in_(("found", "retrieving")))
                    .values(state="cancelled", reason="request cancelled")
                )
                log.info("inference request %d cancelled", request_id)
        return bool(cancelled)

    # Claiming and releasing -----------------------------------------------------
    def claim(self, owner: str, now: datetime | None = None) -> ClaimedRequest | None:
        """Take the most urgent due request that nobody holds (or whose holder's lease ran out)."""
        now = now or utcnow()
        due = and_(
            InferenceRequest.state.in_(ACTIVE_STATES),
            InferenceRequest.next_attempt_at <= now,
            or_(InferenceRequest.owner == "", InferenceRequest.lease_until < now),
        )
        with self._sessions.begin() as session:
            candidates = session.execute(
                select(InferenceRequest.id, InferenceRequest.owner, InferenceRequest.state)
                .where(due)
                .order_by(InferenceRequest.priority.desc(), InferenceRequest.next_attempt_at, InferenceRequest.id)
                .limit(5)
                .with_for_update(skip_locked=True)
            ).all()
            for request_id, previous, state in candidates:
                taken = session.execute(
                    update(InferenceRequest)
                    .where(InferenceRequest.id == request_id, InferenceRequest.owner == previous, InferenceRequest.state == state, due)
                    .values(owner=owner, lease_until=now + self.lease)
                ).rowcount
                if not taken:
                    continue
                if previous:
                    log.warning("inference request %d: %s stopped renewing its lease while %s; %s resumes it", request_id, previous, state, owner)
                row = session.get_one(InferenceRequest, request_id)
                return ClaimedRequest(
                    id=row.id,
                    transaction_id=row.transaction_id,
                    state=row.state,
                    query=StudyQuery(**row.inputs),
                    source=row.source,
                    pipelines=list(row.pipelines),
                    destinations=list(row.destinations),
                    force=row.force,
                    message_id=row.message_id,
                    attempts=row.attempts,
                    created_at=row.created_at,
                    retrieve_ended_at=row.retrieve_ended_at,
                    owner=owner,
                )
        return None

    def renew(self, owner: str) -> int:
        """Extend the leases of the requests `owner` works on (every third of a lease, while a step runs)."""
        with self._sessions.begin() as session:
            return session.execute(
                update(InferenceRequest)
                .where(InferenceRequest.owner == owner, InferenceRequest.state.in_(ACTIVE_STATES))
                .values(lease_until=utcnow() + self.lease)
            ).rowcount

    def release(self, claim: ClaimedRequest, state: str, delay_seconds: float = 0.0, error: dict[str, Any] | None = None, **values: Any) -> bool:
        """End a step: the new state (and values), due again after `delay_seconds`; False if the request was cancelled
        or taken over meanwhile (nothing is written then)."""
        now = utcnow()
        values.update(state=state, owner="", lease_until=None, updated_at=now, next_attempt_at=now + timedelta(seconds=delay_seconds))
        if state in FINAL_STATES:
            values["finished_at"] = now
        with self._sessions.begin() as session:
            row = session.scalar(
                select(InferenceRequest).where(InferenceRequest.id == claim.id, InferenceRequest.owner == claim.owner).with_for_update()
            )
            if row is None or row.state not in ACTIVE_STATES:
                return False
            if error is not None:
                row.errors = [*row.errors, {"at": now.isoformat() + "Z", "step": claim.state, **error}]
            for key, value in values.items():
                setattr(row, key, value)
        if state != claim.state:
            log.info("inference request %d (%s): %s -> %s", claim.id, claim.transaction_id, claim.state, state)
        return True

    def _update_held(self, claim: ClaimedRequest, **values: Any) -> bool:
        with self._sessions.begin() as session:
            return bool(
                session.execute(
                    update(InferenceRequest)
                    .where(InferenceRequest.id == claim.id, InferenceRequest.owner == claim.owner, InferenceRequest.state.in_(ACTIVE_STATES))
                    .values(updated_at=utcnow(), **values)
                ).rowcount
            )

    def set_state(self, claim: ClaimedRequest, state: str) -> None:
        """Show the step being worked on; the row stays held."""
        if state != claim.state and self._update_held(claim, state=state):
            log.info("inference request %d (%s): %s -> %s", claim.id, claim.transaction_id, claim.state, state)

    def mark_retrieve_started(self, claim: ClaimedRequest) -> None:
        self._update_held(claim, retrieve_started_at=utcnow(), retrieve_ended_at=None)

    def mark_retrieve_ended(self, claim: ClaimedRequest) -> None:
        self._update_held(claim, retrieve_ended_at=utcnow(), attempts=0)

    def retrieve_ended_at(self, request_id: int) -> datetime | None:
        with self._sessions() as session:
            return session.scalar(select(InferenceRequest.retrieve_ended_at).where(InferenceRequest.id == request_id))

    def add_error(self, claim: ClaimedRequest, status: int | None, message: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(InferenceRequest, claim.id)
            if row is not None:
                row.errors = [*row.errors, {"at": utcnow().isoformat() + "Z", "step": claim.state, **error_entry(status, message)}]

    # Series ---------------------------------------------------------------------
    def series(self, request_id: int) -> list[InferenceRequestSeries]:
        with self._sessions() as session:
            return list(session.scalars(select(InferenceRequestSeries).where(InferenceRequestSeries.request_fk == request_id)))

    def replace_series(self, request_id: int, rows: list[InferenceRequestSeries]) -> None:
        """What the C-FIND found (a repeated find replaces what an interrupted one wrote)."""
        with self._sessions.begin() as session:
            session.query(InferenceRequestSeries).filter(InferenceRequestSeries.request_fk == request_id).delete()
            session.add_all(rows)

    def set_series(self, request_id: int, series_uid: str, **values: Any) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(InferenceRequestSeries)
                .where(InferenceRequestSeries.request_fk == request_id, InferenceRequestSeries.series_instance_uid == series_uid)
                .values(**values)
            )

    def retrieved_elsewhere(self, request_id: int, series_uid: str) -> bool:
        """Another unfinished request is retrieving this series: this one waits for its instances instead of fetching them twice."""
        with self._sessions() as session:
            return bool(
                session.scalar(
                    select(func.count())
                    .select_from(InferenceRequestSeries)
                    .join(InferenceRequest, InferenceRequest.id == InferenceRequestSeries.request_fk)
                    .where(
                        InferenceRequestSeries.series_instance_uid == series_uid,
                        InferenceRequestSeries.request_fk != request_id,
                        InferenceRequestSeries.state == "retrieving",
                        InferenceRequest.state == "retrieving",
                    )
                )
            )

    def stored_instances(self, series_uid: str) -> set[str]:
        with self._sessions() as session:
            return set(
                session.scalars(
                    select(Instance.sop_instance_uid).join(Series, Series.id == Instance.series_fk).where(Series.series_instance_uid == series_uid)
                )
            )

    def last_arrival(self, series_uids: list[str]) -> datetime | None:
        with self._sessions() as session:
            return session.scalar(select(func.max(Series.last_received_at)).where(Series.series_instance_uid.in_(series_uids)))

    def newest_job(self, series_uid: str) -> Job | None:
        with self._sessions() as session:
            return session.scalar(
                select(Job).join(Series, Series.id == Job.series_fk).where(Series.series_instance_uid == series_uid).order_by(Job.id.desc()).limit(1)
            )

    def job(self, job_id: int) -> Job | None:
        with self._sessions() as session:
            return session.get(Job, job_id)

    def make_pending(self, series_uid: str) -> None:
        """Have the scheduler queue a job for a series already stored (nothing new arrived for it)."""
        with self._sessions.begin() as session:
            session.execute(update(Series).where(Series.series_instance_uid == series_uid).values(pending=True))

    def exports_of(self, job_ids: list[int], destinations: list[str]) -> list[Export]:
        with self._sessions() as session:
            query = select(Export).where(Export.job_fk.in_(job_ids), Export.state != "cancelled")
            if destinations:
                query = query.where(Export.destination.in_(destinations))
            return list(session.scalars(query.order_by(Export.id)))

    def received(self, request: InferenceRequest, our_ae: str, series_uids: list[str]) -> int:
        """Instances brought by this request's retrieves: associations whose Move Originator AE and Message ID are ours."""
        if not series_uids:
            return 0
        with self._sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Instance)
                    .join(Association, Association.id == Instance.association_fk)
                    .join(Series, Series.id == Instance.series_fk)
                    .where(
                        Association.move_originator_ae == our_ae,
                        Association.move_message_id == request.message_id,
                        Association.started_at >= request.created_at,
                        Series.series_instance_uid.in_(series_uids),
                    )
                )
                or 0
            )


def error_entry(status: int | None, message: str) -> dict[str, Any]:
    """One of a request's errors: the DICOM status (None when there was none, e.g. the PACS unreachable) and what it means."""
    return {"status": status, "statusHex": None if status is None else f"0x{status:04X}", "message": message}


def _describe(query: StudyQuery) -> str:
    if query.study_instance_uid:
        return f"study {query.study_instance_uid}" + (f" series {query.series_instance_uid}" if query.series_instance_uid else "")
    if query.accession_number:
        return f"accession number {query.accession_number}"
    return f"patient {query.patient_id} studies {query.study_date_from or '...'}-{query.study_date_to or '...'}"
