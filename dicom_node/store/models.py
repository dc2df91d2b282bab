"""The SQL index: what was received, from whom, and what became of it.

The tables are created and changed only by the alembic migrations in
`migrations/`; these models must match the head revision (a test compares them).
Times are stored as timezone-naive UTC so that SQLite and PostgreSQL agree.
"""

from __future__ import annotations

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


class Patient(Base):
    """A patient is PatientID within its issuer: the same ID from two hospitals are two patients."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("patient_id", "issuer", name="uq_patient_id_issuer"),)
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
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="", server_default="", doc="PatientName this study was received with.")
    study_date: Mapped[str] = mapped_column(String(8), default="")
    accession_number: Mapped[str] = mapped_column(String(MAX_IDENTIFIER), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    patient: Mapped[Patient] = relationship()


class Series(Base):
    __tablename__ = "series"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(64), default="")
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pipeline: Mapped[str] = mapped_column(String(64), default="covid19_ct", doc="Pipeline of the called AE that last received it.")
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    last_received_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True, doc="Received new data since its last job was queued.")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    study: Mapped[Study] = relationship()


class Association(Base):
    __tablename__ = "association"
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


class Job(Base):
    __tablename__ = "job"
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
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="Measurements, probabilities and result files.")
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("job.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    series: Mapped[Series] = relationship()


class Export(Base):
    """One result object to send to one destination: the durable outbox."""

    __tablename__ = "export"
    __table_args__ = (UniqueConstraint("job_fk", "sop_instance_uid", "destination"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_fk: Mapped[int] = mapped_column(ForeignKey("job.id"), index=True)
    destination: Mapped[str] = mapped_column(String(64), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    path: Mapped[str] = mapped_column(String(512), doc="Relative to the data dir.")
    state: Mapped[str] = mapped_column(String(16), index=True, doc="pending, sending, sent, failed, cancelled.")
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


class PseudonymMapping(Base):
    """A pseudonym the node sent to a de-identified destination and its original: re-identification, on the node only."""

    __tablename__ = "pseudonym"
    __table_args__ = (UniqueConstraint("kind", "original", name="uq_pseudonym_kind_original"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), doc="uid, patient_id, accession or date_shift_days.")
    original: Mapped[str] = mapped_column(UID)
    pseudonym: Mapped[str] = mapped_column(UID, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
