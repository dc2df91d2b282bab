"""The index over HTTP: associations, studies, series, jobs, exports, and the operator's retry actions."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import Association, Base, Export, Job, Series, Study
from dicom_node.store.outbox import Outbox
from dicom_node.web.context import WebContext, get_context, get_session
from dicom_node.store.rows import association_row, export_row, iso, job_row, series_row, study_row

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(get_session)]
ContextDep = Annotated[WebContext, Depends(get_context)]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows, newest first.")]
MAX_ID = 2**63 - 1  # the largest id the database stores (a signed 64-bit integer); larger ones cannot be looked up
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Skip this many rows (paging).")]
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="The row's id (1 .. 2^63-1; others answer 422).")]
RowFilter = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only rows of this id.")]

Row = TypeVar("Row", bound=Base)


def get_or_404(session: Session, model: type[Row], row_id: int) -> Row:
    row = session.get(model, row_id)
    if row is None:
        raise HTTPException(404, f"no {model.__tablename__} {row_id}")
    return row


def newest(session: Session, model: type[Row], limit: int, offset: int, **equal: object) -> list[Row]:
    """One page of `model` rows, newest (highest id) first, where each given column equals its value (None: no filter)."""
    query = select(model).order_by(model.id.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    for column, value in equal.items():
        if value is not None and value != "":
            query = query.where(getattr(model, column) == value)
    return list(session.scalars(query))


def latest_jobs(session: Session, series_ids: list[int]) -> dict[int, Job]:
    """The newest job of each series (by id), the one whose results the viewer shows."""
    newest = select(func.max(Job.id)).where(Job.series_fk.in_(series_ids)).group_by(Job.series_fk)
    return {job.series_fk: job for job in session.scalars(select(Job).where(Job.id.in_(newest)))}


def export_states(session: Session, job_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per job: how many of its exports are in each state."""
    counts: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(Export.job_fk, Export.state, func.count()).where(Export.job_fk.in_(job_ids)).group_by(Export.job_fk, Export.state)
    )
    for job_id, state, count in rows:
        counts.setdefault(job_id, {})[state] = count
    return counts


def job_summary(job: Job | None, exports: dict[int, dict[str, int]]) -> dict[str, Any] | None:
    if job is None:
        return None
    return {"id": job.id, "state": job.state, "reason": job.reason, "finished_at": iso(job.finished_at), "exports": exports.get(job.id, {})}


@router.get("/associations", summary="Associations, newest first")
def list_associations(session: SessionDep, limit: Limit = 100, offset: Offset = 0, state: str | None = None) -> list[dict[str, Any]]:
    return [association_row(row) for row in newest(session, Association, limit, offset, state=state)]


@router.get("/associations/{association_id}", summary="One association")
def get_association(association_id: RowId, session: SessionDep) -> dict[str, Any]:
    return association_row(get_or_404(session, Association, association_id))


@router.get("/studies", summary="Studies, newest first")
def list_studies(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> list[dict[str, Any]]:
    return [study_row(row) for row in newest(session, Study, limit, offset)]


@router.get("/studies/{study_id}", summary="One study with its series")
def get_study(study_id: RowId, session: SessionDep) -> dict[str, Any]:
    study = get_or_404(session, Study, study_id)
    series = session.scalars(select(Series).where(Series.study_fk == study_id).order_by(Series.series_number, Series.id))
    return study_row(study) | {"series": [series_row(row) for row in series]}


@router.get("/series", summary="Series, most recently received first, each with its newest job and that job's export states")
def list_series(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> list[dict[str, Any]]:
    query = select(Series).order_by(Series.last_received_at.desc(), Series.id.desc()).limit(limit).offset(offset)
    series = list(session.scalars(query))
    jobs = latest_jobs(session, [row.id for row in series])
    exports = export_states(session, [job.id for job in jobs.values()])
    return [series_row(row) | {"job": job_summary(jobs.get(row.id), exports)} for row in series]


@router.get("/series/{series_id}", summary="One series with all its jobs, newest first")
def get_series(series_id: RowId, session: SessionDep) -> dict[str, Any]:
    series = get_or_404(session, Series, series_id)
    jobs = session.scalars(select(Job).where(Job.series_fk == series_id).order_by(Job.id.desc()))
    return series_row(series) | {"jobs": [job_row(job) for job in jobs]}


@router.get("/jobs", summary="Jobs, newest first: state, per-step timings, errors, results")
def list_jobs(session: SessionDep, limit: Limit = 100, offset: Offset = 0, state: str | None = None) -> list[dict[str, Any]]:
    return [job_row(job) for job in newest(session, Job, limit, offset, state=state)]


@router.get("/jobs/{job_id}", summary="One job")
def get_job(job_id: RowId, session: SessionDep) -> dict[str, Any]:
    return job_row(get_or_404(session, Job, job_id))


@router.post("/jobs/{job_id}/retry", summary="Queue a finished (failed, skipped or done) job again")
def retry_job(job_id: RowId, session: SessionDep, context: ContextDep) -> dict[str, Any]:
    job = get_or_404(session, Job, job_id)
    if not JobQueue(context.sessions, context.config.node.name).retry(job_id):
        raise HTTPException(409, f"job {job_id} is {job.state}: only failed, skipped or done jobs can be retried")
    session.expire_all()
    return job_row(get_or_404(session, Job, job_id))


@router.get("/exports", summary="Result exports (the outbox), newest first")
def list_exports(
    session: SessionDep, limit: Limit = 100, offset: Offset = 0, state: str | None = None, job: RowFilter = None, destination: str | None = None
) -> list[dict[str, Any]]:
    return [export_row(row) for row in newest(session, Export, limit, offset, state=state, job_fk=job, destination=destination)]


@router.get("/exports/{export_id}", summary="One export")
def get_export(export_id: RowId, session: SessionDep) -> dict[str, Any]:
    return export_row(get_or_404(session, Export, export_id))


@router.post("/exports/{export_id}/retry", summary="Send a failed (or already sent) export again, with a fresh retry horizon")
def retry_export(export_id: RowId, session: SessionDep, context: ContextDep) -> dict[str, Any]:
    export = get_or_404(session, Export, export_id)
    if not Outbox(context.sessions, context.config.export, context.data_dir).retry(export_id):
        raise HTTPException(409, f"export {export_id} is {export.state}: only failed or sent exports can be retried")
    session.expire_all()
    return export_row(get_or_404(session, Export, export_id))


@router.get("/destinations", summary="Configured destinations, each with its effective de-identification profile")
def list_destinations(context: ContextDep) -> list[dict[str, Any]]:
    from dicom_node.deidentify.deidentifier import effective_profile

    return [
        {
            "name": dest.name,
            "ae_title": dest.ae_title,
            "host": dest.host,
            "port": dest.port,
            "tls": dest.tls,
            "include_source": dest.include_source,
            "deidentification": effective_profile(dest.deidentification),
        }
        for dest in context.config.destinations
    ]
