"""The schema is made only by migrations, and the migrations match the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dicom_node.store.db import downgrade, make_engine, upgrade
from dicom_node.store.models import Base

TABLES = {"patient", "study", "series", "instance", "association", "association_series", "job", "export", "cluster_setting",
          "inference_request", "inference_request_series", "pseudonym", "config_entity", "config_revision",
          "result_instance"}


def _state(url: str) -> tuple[str | None, set[str]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        tables = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return revision, tables


def test_upgrade_from_empty_to_head_matches_the_models(database_url: str) -> None:
    upgrade(database_url)
    revision, tables = _state(database_url)
    assert tables == TABLES
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"
    assert revision is not None


def test_downgrade_one_step_and_back(database_url: str) -> None:
    upgrade(database_url)
    head, _ = _state(database_url)
    downgrade(database_url, "-1")
    previous, tables = _state(database_url)
    assert previous != head and tables <= TABLES
    upgrade(database_url)
    assert _state(database_url) == (head, TABLES)


def test_upgrade_keeps_rows(database_url: str) -> None:
    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO patient (patient_id, patient_name, birth_date, sex) VALUES ('P1', '', '', '')"))
    upgrade(database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT patient_id FROM patient")).scalars().all() == ["P1"]
    engine.dispose()
