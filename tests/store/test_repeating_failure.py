"""A loop whose database keeps failing logs the failure when it starts and when it ends, not at every poll."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import event

from dicom_node.logs import RepeatingFailure
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from tests.store.test_jobs import later, receive


def refuse_writes(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """SQLite itself refuses every write on this connection, as it does on a full disk or a read-only mount."""
    dbapi_connection.execute("PRAGMA query_only=1")


def test_a_failing_database_is_logged_once_when_it_starts_and_once_when_it_ends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    queue = JobQueue(make_sessionmaker(engine), "n1")
    receive(Indexer(make_sessionmaker(engine)), "1.2.5", 2, None)
    engine.dispose()
    event.listen(engine, "connect", refuse_writes)
    failures = RepeatingFailure(logging.getLogger("dicom_node.node"), "scheduler: queueing settled series")
    caplog.set_level(logging.INFO)
    for _ in range(30):  # thirty polls while the database refuses
        assert failures.run(lambda: queue.queue_settled(1.0, now=later())) is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "readonly database" in errors[0].getMessage() and errors[0].exc_info is not None
    assert "[SQL:" not in errors[0].getMessage()

    event.remove(engine, "connect", refuse_writes)
    engine.dispose()
    assert failures.run(lambda: queue.queue_settled(1.0, now=later())) == [1]
    ended = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
    assert len(ended) == 1 and "(30 failed attempt(s))" in ended[0] and "readonly database" in ended[0]
    assert failures.run(lambda: queue.queue_settled(1.0, now=later())) == []
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 2
