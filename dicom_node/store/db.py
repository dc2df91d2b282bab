"""Engine and sessions over SQLite (default) or PostgreSQL, and schema upgrades by alembic.

SQLite runs in WAL mode with synchronous=FULL: a committed row survives a power
cut, which is what lets the SCP acknowledge an instance once its row is
committed. Readers (API, workers) never block the writer in WAL mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)
T = TypeVar("T")
WAIT_STEP_SECONDS = 2.0
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine with the settings the node relies on for durability and concurrency."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def once_more_if_disconnected(action: Callable[[], T], what: str) -> T:
    """`action()` (one whole transaction), run once more if the database had dropped its connection.

    The engine pings a connection before handing it out (`pool_pre_ping`), but one dropped while in use fails
    the transaction it was running; SQLAlchemy has then invalidated it (and the pool's other connections of
    before the drop), so the second run gets a new one. Only for actions whose second run is harmless when the
    first did commit after all (the error came with the commit)."""
    try:
        return action()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("%s: database connection lost (%s); tried again on a new connection", what, str(exc.orig).strip())
        return action()


class DatabaseUnreachable(ConnectionError):
    """The database server did not answer within `database.wait_seconds`."""


def wait_for_database(url: str, wait_seconds: float, stop_requested: Callable[[], bool] = lambda: False) -> None:
    """Return once the database server accepts a connection; raise DatabaseUnreachable after `wait_seconds`, or
    as soon as `stop_requested()` (a SIGTERM while waiting).

    A node started beside its PostgreSQL (compose, a pod) would otherwise exit and be restarted until the server is
    up, and podman-compose does not wait for a `service_healthy` dependency. SQLite has no server to wait for. The log
    says, every few seconds, what is awaited (the URL without its password) and why it failed.
    """
    if url.startswith("sqlite"):
        return
    where = make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                with engine.connect():
                    return
            except OperationalError as exc:
                left = deadline - time.monotonic()
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                if left <= 0:
                    raise DatabaseUnreachable(f"database {where} unreachable after {wait_seconds:g} s: {reason}") from None
                log.info("waiting for the database %s (%.0f s left): %s", where, left, reason)
                resume = time.monotonic() + min(WAIT_STEP_SECONDS, left)
                while time.monotonic() < resume:
                    if stop_requested():
                        raise DatabaseUnreachable(f"stopped while waiting for the database {where}: {reason}")
                    time.sleep(0.1)
    finally:
        engine.dispose()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def sqlite_path(url: str) -> Path | None:
    """The index file of an SQLite URL; None for other databases."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; the only way tables are created."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
