"""An index created by any earlier release upgrades to head with its rows intact, and the node serves it.

The revisions come from alembic's own script directory, so a migration added later is covered without touching
this test. Each table of the schema at the starting revision gets a row whose values are derived from the table,
column and type (foreign keys point at the row of the referenced table); after `upgrade` to head every value that
column still holds is unchanged and the API lists the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from dicom_node.store.db import alembic_config, make_engine, make_sessionmaker, upgrade
from dicom_node.web.api import create_app
from dicom_node.web.context import WebContext
from tests.postgres import fresh_postgres_schema
from tests.web.conftest import LOOPBACK_CLIENT, make_config

REVISIONS = [script.revision for script in reversed(list(ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()))]
WHEN = datetime(2026, 1, 2, 3, 4, 5)
ROW_ID = 7


def _value(table: str, column: sa.engine.interfaces.ReflectedColumn, foreign: dict[str, str]) -> Any:
    """A value of the column's type that says where it came from (and a row id for keys)."""
    name, kind = column["name"], column["type"]
    if name in foreign or (name == "id" and isinstance(kind, sa.Integer)):
        return ROW_ID
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, (sa.Integer, sa.Float, sa.Numeric)):
        return 3
    if isinstance(kind, (sa.DateTime, sa.Date)):
        return WHEN
    if isinstance(kind, sa.JSON):
        return {"from": f"{table}.{name}"}
    text = "done" if name == "state" else f"{table}.{name}"  # states are read by the API's filters
    length = getattr(kind, "length", None)
    return text[:length] if length else text


def _tables_in_dependency_order(inspector: sa.Inspector) -> list[str]:
    return [name for name, _ in inspector.get_sorted_table_and_fkc_names() if name and name != "alembic_version"]


def _fill(url: str) -> dict[str, dict[str, Any]]:
    """One row in every table; returns what was written, by table."""
    engine = make_engine(url)
    written: dict[str, dict[str, Any]] = {}
    try:
        with engine.begin() as conn:
            inspector = sa.inspect(conn)
            for table in _tables_in_dependency_order(inspector):
                foreign = {col: fk["referred_table"] for fk in inspector.get_foreign_keys(table) for col in fk["constrained_columns"]}
                row = {column["name"]: _value(table, column, foreign) for column in inspector.get_columns(table)}
                reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
                conn.execute(reflected.insert().values(**row))
                written[table] = row
    finally:
        engine.dispose()
    return written


def _read(url: str) -> dict[str, dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            metadata = sa.MetaData()
            metadata.reflect(conn)
            return {name: dict(row._mapping) for name, table in metadata.tables.items() for row in conn.execute(sa.select(table))}
    finally:
        engine.dispose()


def test_the_revisions_are_discovered_from_alembic() -> None:
    assert REVISIONS[:6] == ["0001", "0002", "0003", "0004", "0005", "0006"]


# Every revision on SQLite (where a migration rebuilds tables); on PostgreSQL the oldest by default, the rest
# among the slow tests (3-4 s each).
CASES = [pytest.param("sqlite", start, id=f"sqlite-{start}") for start in REVISIONS[:-1]] + [
    pytest.param("postgresql", start, id=f"postgresql-{start}", marks=[pytest.mark.postgres] + ([pytest.mark.slow] if start != REVISIONS[0] else []))
    for start in REVISIONS[:-1]
]


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
        return
    with fresh_postgres_schema() as url:
        yield url


@pytest.mark.parametrize(("database", "start"), CASES, indirect=["database"])
def test_an_index_at_each_earlier_revision_upgrades_with_its_rows_and_is_served(start: str, database: str, tmp_path: Path) -> None:
    database_url = database
    upgrade(database_url, start)
    written = _fill(database_url)
    upgrade(database_url)
    after = _read(database_url)
    for table, row in written.items():
        assert table in after, f"{start} -> head dropped table {table} with its rows"
        for column, value in row.items():
            if column in after[table]:
                found = after[table][column]
                if isinstance(value, dict):  # JSON: a text column on an older revision may be a JSON column now
                    assert found == value or found == str(value), (table, column)
                else:
                    assert found == value, f"{start} -> head changed {table}.{column}: {value!r} -> {found!r}"

    engine = make_engine(database_url)
    context = WebContext(make_config(tmp_path, database={"url": database_url}), make_sessionmaker(engine), tmp_path)
    try:
        with TestClient(create_app(context), client=LOOPBACK_CLIENT, base_url="http://localhost") as http:
            for table in ("study", "series", "job", "export", "association"):
                answer = http.get({"study": "/api/studies", "series": "/api/series"}.get(table, f"/api/{table}s"))
                assert answer.status_code == 200, (table, answer.text)
                assert [row["id"] for row in answer.json()] == ([ROW_ID] if table in written else []), table
            if "job" in written:  # the job table came with 0002
                assert http.get(f"/api/jobs/{ROW_ID}").json()["state"] == "done"
                assert 'dicom_node_jobs{state="done"} 1.0' in http.get("/metrics").text
    finally:
        engine.dispose()
