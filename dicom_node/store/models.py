"""The SQL index: what was received, from whom, and what became of it.

The tables are created and changed only by the alembic migrations in
`migrations/`; these models must match the head revision (a test compares them).
Times are stored as timezone-naive UTC so that SQLite and PostgreSQL agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

MAX_IDENTIFIER = 512
"""Characters kept of a UID or ID: far beyond DICOM's 64, so that values from odd archives are indexed whole and
matched exactly (a longer one is refused, never cut), and within PostgreSQL's limit on a unique index entry."""
UID = String(MAX_IDENTIFIER)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


# Ids that appear in URLs and logs (the access log's paths map them to patients) are never given again after their
# row is deleted (retention): SQLite reuses the highest rowid otherwise; PostgreSQL's sequences never do.
NEVER_REUSED_IDS = {"sqlite_autoincrement": True}


class Patient(Base):
    """A patient is PatientID within its issuer: the same ID from two hospitals are two patients."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("patient_id", "issuer", name="uq_patient_id_issuer"), NEVER_REUSED_IDS)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(MAX_IDENTIFIER), doc="PatientID as received ('' when absent).")
    issuer: Mapped[str] = mapped_column(String(MAX_IDENTIFIER), default="", server_default="", doc="IssuerOfPatientID ('' when absent).")
    patient_name: Mapped[str] = mapped_column(String(324), default="", doc="The name its first study came with.")
    names_differ: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), doc="Its studies came with different patient names (see study.patient_name)."
    )
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")


class Study(Base):
    __tablename__ = "study"
    __table_args__ = NEVER_REUSED_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="", server_default="", doc="PatientName this study was received with.")
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="", server_default="", doc="StudyTime as received ('' before migration 0012).")
    study_id: Mapped[str] = mapped_column(String(16), default="", server_default="", doc="StudyID as received ('' before migration 0012).")
    accession_number: Mapped[str] = mapped_column(String(MAX_IDENTIFIER), default="", index=True)
    description: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    patient: Mapped[Patient] = relationship()


PIPELINE_SEPARATOR = "\\"  # between the pipeline names in Series.pipeline, as DICOM separates values


def pipelines_value(names: Sequence[str]) -> str:
    """Series.pipeline for these pipelines (a called AE's, in its order)."""
    return PIPELINE_SEPARATOR.join(names)


def pipeline_names(value: str) -> list[str]:
    """The pipelines a Series.pipeline names (rows from before the list name one)."""
    return [name for name in value.split(PIPELINE_SEPARATOR) if name]


class Series(Base):
    __tablename__ = "series"
    __table_args__ = NEVER_REUSED_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    description: Mapped[str] = mapped_column(String(64), default="")
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pipeline: Mapped[str] = mapped_column(
        String(64),
        default="",
        doc="Pipelines of the called AE that last received it, separated by a backslash (`pipeline_names`): one job each.",
    )
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    last_received_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, doc="When it last received a new instance (of any class).")
    last_released_at: Mapped[datetime | None] = mapped_column(
        DateTime,
        nullable=True,
        doc="When an association that sent (or re-sent) any of it last ended with a normal release. A series received since "
        "only on associations that ended abnormally is held back: a half-sent series must not give a result.",
    )
    pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True, doc="Received new data since its last job was queued.")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    study: Mapped[Study] = relationship()


class Association(Base):
    __tablename__ = "association"
    __table_args__ = NEVER_REUSED_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    node: Mapped[str] = mapped_column(String(64), index=True, doc="Name of the node process that accepted it.")
    calling_ae: Mapped[str] = mapped_column(String(16))
    called_ae: Mapped[str] = mapped_column(String(16))
    peer_host: Mapped[str] = mapped_column(String(64))
    peer_port: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True, doc="open, released, aborted, interrupted (node stopped).")
    instances_received: Mapped[int] = mapped_column(Integer, default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(
        DateTime, nullable=True, doc="An open association whose receiving process stopped renewing this no longer holds its series back."
    )
    move_originator_ae: Mapped[str | None] = mapped_column(
        String(16), nullable=True, doc="The retrieve that brought its instances: C-MOVE's Move Originator AE (or the node's own AE for C-GET/WADO-RS)."
    )
    move_message_id: Mapped[int | None] = mapped_column(Integer, nullable=True, doc="... and the Message ID of that C-MOVE (or of the request's retrieve).")


class AssociationSeries(Base):
    """Which series an association sent: a series is not settled while one of them is open."""

    __tablename__ = "association_series"
    association_fk: Mapped[int] = mapped_column(ForeignKey("association.id"), primary_key=True)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), primary_key=True, index=True)


class Instance(Base):
    __tablename__ = "instance"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    path: Mapped[str] = mapped_column(String(512), doc="Relative to the data dir.")
    size: Mapped[int] = mapped_column(BigInteger)
    association_fk: Mapped[int | None] = mapped_column(ForeignKey("association.id"), nullable=True, index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    series: Mapped[Series] = relationship()


class ResultInstance(Base):
    """A DICOM object a job wrote (SEG, SR, summary page, key image), indexed as a received instance is: the
    Query/Retrieve SCP finds results without opening their files. Only a *done* job's rows are results; its rows go
    with the job (and with the study)."""

    __tablename__ = "result_instance"
    __table_args__ = (UniqueConstraint("job_fk", "sop_instance_uid", name="uq_result_instance_job_sop"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_fk: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_description: Mapped[str] = mapped_column(String(64), default="")
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    path: Mapped[str] = mapped_column(String(512), doc="Relative to the data dir.")


class Job(Base):
    __tablename__ = "job"
    __table_args__ = NEVER_REUSED_IDS
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True, doc="queued, running, done, failed, skipped, superseded.")
    reason: Mapped[str] = mapped_column(Text, default="", doc="Why it failed, was skipped, superseded or is waiting.")
    instance_count: Mapped[int] = mapped_column(Integer, default=0, doc="Instances of the series when the job was queued.")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, doc="A waiting job is not claimed before this time.")
    worker: Mapped[str] = mapped_column(String(128), default="", doc="Owner of a running job: <node>/<host>/<pid>/worker-<n>.")
    lease_until: Mapped[datetime | None] = mapped_column(
        DateTime, nullable=True, index=True, doc="A running job whose owner stopped renewing this is taken over by another worker."
    )
    steps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="Step name -> seconds.")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="Headline, category, fitness flags, measurements, classifier scores and result files.")
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("job.id"), nullable=True)
    input_incomplete: Mapped[str] = mapped_column(
        Text, default="", server_default="", doc="Why its input may be incomplete ('' none known): queued after the grace period without a normal release."
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    series: Mapped[Series] = relationship()


class Export(Base):
    """One result object to send to one destination: the durable outbox."""

    __tablename__ = "export"
    __table_args__ = (UniqueConstraint("job_fk", "sop_instance_uid", "destination"), NEVER_REUSED_IDS)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_fk: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    path: Mapped[str] = mapped_column(String(512), doc="Relative to the data dir.")
    state: Mapped[str] = mapped_column(String(16), index=True, doc="pending, sending, sent, failed, cancelled, superseded.")
    owner: Mapped[str] = mapped_column(String(128), default="", server_default="", doc="The process sending it (state sending).")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True, doc="DIMSE status of the last attempt.")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ClusterSetting(Base):
    """Facts every process sharing the database must agree on (the shared-storage token)."""

    __tablename__ = "cluster_setting"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class InferenceRequest(Base):
    """A request to process studies that are in a PACS (`/api/inference`, `dicom-node process`): found, retrieved,
    processed by the usual jobs and exported, one step at a time by whichever process holds its lease."""

    __tablename__ = "inference_request"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(MAX_IDENTIFIER), unique=True, doc="The client's id (MIG's transactionID).")
    priority: Mapped[int] = mapped_column(Integer, default=128)
    state: Mapped[str] = mapped_column(
        String(16), index=True, doc="queued, finding, retrieving, processing, exporting, done, failed, cancelled."
    )
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="What to find: the query (RequestInput).")
    source: Mapped[str] = mapped_column(String(64), doc="A configured source's name, or AE@host:port.")
    pipelines: Mapped[list[str]] = mapped_column(JSON, default=list)
    destinations: Mapped[list[str]] = mapped_column(JSON, default=list, doc="Where results go; empty: the pipeline's destinations.")
    force: Mapped[bool] = mapped_column(Boolean, default=False, doc="Run series again whose results of the same algorithm version exist.")
    message_id: Mapped[int] = mapped_column(Integer, default=1, doc="Message ID of its C-MOVE/C-GET requests: arrivals are matched by it.")
    owner: Mapped[str] = mapped_column(String(128), default="", doc="The process working on it now ('' between steps).")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, doc="Attempts to reach the PACS that failed in a row.")
    partial: Mapped[bool] = mapped_column(Boolean, default=False, doc="Some instances the PACS counted did not come.")
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, doc="Every problem: when, step, DICOM status, explanation.")
    retrieve_started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    retrieve_ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, doc="The PACS's final answer to the retrieve.")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class InferenceRequestSeries(Base):
    """One series a request found in the PACS, and what became of it."""

    __tablename__ = "inference_request_series"
    request_fk: Mapped[int] = mapped_column(ForeignKey("inference_request.id"), primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, primary_key=True, index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    modality: Mapped[str] = mapped_column(String(16), default="")
    sop_class_uids: Mapped[list[str]] = mapped_column(JSON, default=list, doc="SOP classes the C-FIND found (C-GET's role selection).")
    expected: Mapped[int] = mapped_column(Integer, default=0, doc="Instances the PACS counted.")
    present_before: Mapped[int] = mapped_column(Integer, default=0, doc="Of those, already stored when the request found them.")
    state: Mapped[str] = mapped_column(
        String(16), default="found", doc="found, retrieving (holds its job back), retrieved, partial, present, processing, done, failed, skipped, cancelled."
    )
    after_job: Mapped[int] = mapped_column(Integer, default=0, doc="The series' newest job id before the request: the request's job is newer.")
    job_fk: Mapped[int | None] = mapped_column(ForeignKey("job.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


class PseudonymMapping(Base):
    """A pseudonym the node sent to a de-identified destination and its original: re-identification, on the node only."""

    __tablename__ = "pseudonym"
    __table_args__ = (UniqueConstraint("kind", "original", name="uq_pseudonym_kind_original"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), doc="uid, patient_id, accession or date_shift_days.")
    original: Mapped[str] = mapped_column(UID)
    pseudonym: Mapped[str] = mapped_column(UID, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ConfigEntity(Base):
    """A called AE, source or destination of the run-time configuration (`config_entities.py`), kept after its removal
    (`removed_at`) so that the configuration file does not add it back at the next start."""

    __tablename__ = "config_entity"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_config_entity_kind_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), doc="ae, source or destination.")
    name: Mapped[str] = mapped_column(String(64), doc="The AE title of a called AE, the name of the others.")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, doc="The entity's fields, as its model writes them.")
    removed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128), doc="Who made the last change (as the audit log names them).")


class ConfigRevision(Base):
    """One row: bumped by every configuration change in its transaction, read by every process to see that it changed."""

    __tablename__ = "config_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
