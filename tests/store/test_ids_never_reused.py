"""Ids that appear in URLs and logs are never given again once retention deleted their rows, on SQLite as on
PostgreSQL, and migration 0008 keeps an existing index's rows and references.

Before 0008, SQLite gave the next series' job the id of the job retention had just deleted (the campaign saw job 2
twice): an access-log path naming job 2 then pointed at two patients."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import RetentionSettings
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.models import Association, AssociationSeries, Export, Job, Patient, Series, Study, utcnow
from dicom_node.store.retention import Retention

KINDS = (Patient, Study, Series, Association, Job, Export)


def received_series(sessions: sessionmaker[Session], number: int) -> dict[type, int]:
    """A patient's study and series, received by an association, with a done job and a sent export: their ids."""
    uid = f"1.2.826.0.1.3680043.9.{uuid.uuid4().int % 10**12}.{number}"
    with sessions.begin() as session:
        patient = Patient(patient_id=f"P{number}", patient_name=f"NAME^{number}")
        study = Study(study_instance_uid=f"{uid}.1", patient=patient)
        series = Series(series_instance_uid=f"{uid}.2", study=study, last_received_at=utcnow() - timedelta(days=2))
        association = Association(uuid=str(uuid.uuid4()), node="n", calling_ae="M", called_ae="C", peer_host="h", peer_port=1,
                                  state="released")
        job = Job(series=series, pipeline="covid19_ct", state="done")
        session.add_all([patient, study, series, association, job])
        session.flush()
        session.add(AssociationSeries(association_fk=association.id, series_fk=series.id))
        export = Export(job_fk=job.id, destination="pacs", sop_instance_uid=f"{uid}.3", sop_class_uid="1.2", path="x", state="sent")
        session.add(export)
        session.flush()
        return {Patient: patient.id, Study: study.id, Series: series.id, Association: association.id, Job: job.id, Export: export.id}


def test_ids_deleted_by_retention_are_never_given_again(database_url: str, tmp_path: Path) -> None:
    # The models are at head (later migrations add columns), so rows go in at head; 0008's rebuild of an index
    # holding rows is covered by tests/store/test_upgrade_each_revision.py.
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    kept = received_series(sessions, 1)
    with sessions() as session:
        assert {kind: session.scalar(sa.select(sa.func.max(kind.id))) for kind in KINDS} == kept
    newest = received_series(sessions, 2)
    with sessions.begin() as session:  # the association ended long ago: nothing holds the series back
        session.execute(sa.delete(AssociationSeries))
    Retention(sessions, RetentionSettings(max_age_days=1), tmp_path).sweep()  # deletes both series, newest included
    with sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0
    after = received_series(sessions, 3)
    engine.dispose()
    for kind in (Patient, Study, Series, Job, Export):
        assert after[kind] > newest[kind], f"{kind.__tablename__} id {after[kind]} given again (the deleted newest was {newest[kind]})"
