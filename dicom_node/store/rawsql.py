"""Plain DB-API statements on the engine's own connections, for the one path that runs before every C-STORE answer.

SQLAlchemy Core costs about 0.4 ms of CPU per instance in the receive path
(building the statement, coercing values, the cache lookup, the result
object), more than the three statements themselves on SQLite; under the GIL
that time is taken from every other association. Here the few per-instance
statements are written once in SQL, in the driver's parameter style, and run
on DB-API connections the engine itself made (so its connect-time settings
apply: WAL, synchronous=FULL, foreign keys, busy timeout on SQLite).

Connections are detached from the engine's pool and kept in a small free list
of their own: a receiving thread takes one for one transaction and gives it
back, and the pool stays free for the API and the workers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Engine

MAX_IDLE = 8  # connections kept for reuse; more concurrent transactions open (and later close) their own


class RawConnections:
    """DB-API connections of `engine` for hand-written statements; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect
        self._qmark = dialect.paramstyle == "qmark"
        # How the dialect wants a datetime bound (SQLite: a string in SQLAlchemy's own format, so that rows written
        # here compare and read back exactly as rows written through SQLAlchemy); None: the driver takes it as is.
        self._datetime: Callable[[datetime], Any] | None = DateTime().bind_processor(dialect)
        self.integrity_error: type[Exception] = dialect.loaded_dbapi.IntegrityError
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def sql(self, text: str) -> str:
        """A statement written with `?` placeholders, in the driver's parameter style."""
        return text if self._qmark else text.replace("?", "%s")

    def timestamp(self, value: datetime) -> Any:
        return value if self._datetime is None else self._datetime(value)

    def _connect(self) -> Any:
        pooled = self._engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # ours until closed: never handed back to the engine's pool
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = self._connect()
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            try:
                connection.rollback()
            except Exception:  # a broken connection is not reused
                connection.close()
                raise
            self._give_back(connection)
            raise
        self._give_back(connection)

    def _give_back(self, connection: Any) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def first(cursor: Any, statement: str, parameters: Sequence[Any]) -> Any:
    """The first column of the first row, or None."""
    cursor.execute(statement, parameters)
    row = cursor.fetchone()
    return None if row is None else row[0]
