"""Database URLs (and sessions at the newest schema) for store tests: SQLite always, PostgreSQL when the local server answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from tests.postgres import fresh_postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty database: a new SQLite file, or a fresh schema in the local PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
        return
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def sessions(database_url: str):
    """Sessions on that database, at the newest schema."""
    upgrade(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()
