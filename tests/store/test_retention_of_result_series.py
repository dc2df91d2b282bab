"""Retention goes by the received time of every series, including those that hold only results or non-images
(a PACS forwarding the node's SEG/SR back): they used to have no received time, so retention never deleted them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from dicom_node.config import Config, RetentionSettings
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.ingest import Indexer, InstanceMeta
from dicom_node.store.models import Series, utcnow
from dicom_node.store.retention import Retention

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def test_retention_deletes_an_old_sr_only_series(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    indexer = Indexer(sessions, Config().job_sop_classes())
    relpath = Path("instances/sr-only/1.dcm")
    (tmp_path / relpath).parent.mkdir(parents=True)
    (tmp_path / relpath).write_bytes(b"an SR the PACS forwarded back")
    meta = InstanceMeta(
        sop_instance_uid="1.2.3.9.1", sop_class_uid=COMPREHENSIVE_3D_SR, study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.9", transfer_syntax_uid="1.2.840.10008.1.2.1", patient_id="P1", modality="SR",
    )
    indexer.record(meta, relpath, 29, None, "covid19_ct", replace=False)
    retention = Retention(sessions, RetentionSettings(max_age_days=1), tmp_path)
    assert retention.sweep(now=utcnow() + timedelta(hours=12)).series == [], "not old yet"
    assert retention.sweep(now=utcnow() + timedelta(days=2)).series == ["1.2.3.9"]
    assert not (tmp_path / relpath).exists()
    indexer.close()
    engine.dispose()


def test_the_migration_gives_result_only_series_their_received_time(database_url: str) -> None:
    upgrade(database_url, "0006")
    engine = make_engine(database_url)
    received = utcnow().replace(microsecond=0)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO patient (id, patient_id, issuer, patient_name, names_differ, birth_date, sex) VALUES (1, 'P1', '', '', false, '', '')"))
        conn.execute(sa.text("INSERT INTO study (id, study_instance_uid, patient_fk, patient_name, study_date, accession_number, description, created_at) "
                             "VALUES (1, '1.2.3', 1, '', '', '', '', :t)"), {"t": received})
        conn.execute(sa.text("INSERT INTO series (id, series_instance_uid, study_fk, modality, description, pipeline, instance_count, pending, created_at) "
                             "VALUES (1, '1.2.3.9', 1, 'SR', '', 'covid19_ct', 1, false, :t)"), {"t": received})
        conn.execute(sa.text("INSERT INTO instance (sop_instance_uid, sop_class_uid, series_fk, transfer_syntax_uid, path, size, received_at) "
                             "VALUES ('1.2.3.9.1', :c, 1, '1.2.840.10008.1.2.1', 'x', 1, :t)"), {"c": COMPREHENSIVE_3D_SR, "t": received})
    upgrade(database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(Series.last_received_at, Series.last_released_at)).one() == (received, received)
    engine.dispose()
