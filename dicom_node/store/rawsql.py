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
back, and the pool stays free for the API and the workers. A transaction that
finds its connection dropped by the database runs again on a new one (`run`).

On SQLite, the receive path's write transactions take turns on a lock of their
own first (`SerialWriters`): SQLite lets one connection write at a time, and a
connection that finds the index locked sleeps in its busy handler (1, 2, 5, 10
ms and on) however soon the lock is free, where a commit holds it for 0.3-0.7
ms (its fsync). With four associations in four receiving processes, a fifth to
a third of each one's time went to those sleeps. A writer waiting on the turn
lock is woken by the kernel as soon as it is released.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import DateTime, Engine

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_IDLE = 8  # connections kept for reuse; more concurrent transactions open (and later close) their own


class SerialWriters:
    """One receive-path write transaction at a time on an SQLite index, across threads and processes.

    A lock file beside the index (`<index>-writers.lock`), locked with flock: the lock is the open file's, so
    threads of one process also take turns on a thread lock; the kernel drops it when its process dies.
    Writers that do not take it (workers, the scheduler, the API) still meet SQLite's own lock and busy handler,
    as before, and no one holds SQLite's lock while waiting for this one, so the two cannot deadlock.
    """

    def __init__(self, index: Path) -> None:
        self.path = index.with_name(index.name + "-writers.lock")
        self._threads = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class RawConnections:
    """DB-API connections of `engine` for hand-written statements; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect
        index = engine.url.database if dialect.name == "sqlite" else None
        self._writers = SerialWriters(Path(index)) if index and index != ":memory:" else None
        self._qmark = dialect.paramstyle == "qmark"
        # How the dialect wants a datetime bound (SQLite: a string in SQLAlchemy's own format, so that rows written
        # here compare and read back exactly as rows written through SQLAlchemy); None: the driver takes it as is.
        self._datetime: Callable[[datetime], Any] | None = DateTime().bind_processor(dialect)
        self.integrity_error: type[Exception] = dialect.loaded_dbapi.IntegrityError
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
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

    def run(self, block: Callable[[Any], T], writes: bool = False, committed: Callable[[Any], bool] | None = None) -> T:
        """`block(cursor)` in a transaction, committed when it returns, rolled back if it raises; its result.

        `writes`: the block writes, and takes its turn among the receive path's writers first (SQLite).

        A connection the database dropped (a restart, a failover, `pg_terminate_backend`) fails the block with a
        disconnect error: run before the commit, nothing of it happened, and it runs once more on a new
        connection, so the C-STORE it serves is not answered with a failure. The engine's pool does the same for
        SQLAlchemy's own connections (`pool_pre_ping`). A drop during the commit leaves it unknown whether the
        transaction committed: `committed(cursor)` says, on the new connection (without it, the error is raised).
        """
        if writes and self._writers is not None:
            with self._writers.turn():
                return self._run(block, committed)
        return self._run(block, committed)

    def _take(self) -> Any:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        return connection if connection is not None else self._connect()

    def _run(self, block: Callable[[Any], T], committed: Callable[[Any], bool] | None) -> T:
        connection = self._take()
        try:
            return self._attempt(connection, block)
        except _Dropped as dropped:
            log.warning("database connection lost (%s): reconnected, the transaction runs again", dropped.reason)
            connection = self._replace(dropped.connection)
            if dropped.in_commit:
                if committed is None:
                    raise dropped.error from None
                if self._attempt(connection, committed):
                    return cast(T, dropped.result)
                connection = self._take()
        try:
            return self._attempt(connection, block)
        except _Dropped as dropped:
            with suppress(Exception):
                dropped.connection.close()
            raise dropped.error from None

    def _attempt(self, connection: Any, block: Callable[[Any], T]) -> T:
        """One run of `block` in a transaction on `connection`, which is given back (or closed) after it."""
        cursor = connection.cursor()
        try:
            try:
                result = block(cursor)
            finally:
                cursor.close()
        except Exception as exc:
            if self._is_disconnect(exc, connection, cursor):
                raise _Dropped(exc, connection, in_commit=False) from exc
            self._roll_back(connection)
            raise
        except BaseException:
            self._roll_back(connection)
            raise
        try:
            connection.commit()
        except Exception as exc:
            if self._is_disconnect(exc, connection, None):
                raise _Dropped(exc, connection, in_commit=True, result=result) from exc
            self._roll_back(connection)
            raise
        self._give_back(connection)
        return result

    def _is_disconnect(self, error: Exception, connection: Any, cursor: Any) -> bool:
        return isinstance(error, self._dbapi_error) and self._engine.dialect.is_disconnect(error, connection, cursor)

    def _replace(self, dead: Any) -> Any:
        """A new connection instead of `dead`; the idle ones are closed too: whatever dropped one most likely
        dropped them all, and each would otherwise fail one more C-STORE's first try."""
        with suppress(Exception):
            dead.close()
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            with suppress(Exception):
                connection.close()
        return self._connect()

    def _roll_back(self, connection: Any) -> None:
        """Roll back and keep the connection; a broken one is closed instead of reused."""
        try:
            connection.rollback()
        except Exception:
            with suppress(Exception):
                connection.close()
            return
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
        if self._writers is not None:
            self._writers.close()


class _Dropped(Exception):
    """The database dropped the connection during a transaction's statements, or during its commit."""

    def __init__(self, error: Exception, connection: Any, in_commit: bool, result: Any = None) -> None:
        super().__init__(str(error))
        self.error, self.connection, self.in_commit, self.result = error, connection, in_commit, result
        self.reason = " ".join(str(error).split())


def first(cursor: Any, statement: str, parameters: Sequence[Any]) -> Any:
    """The first column of the first row, or None."""
    cursor.execute(statement, parameters)
    row = cursor.fetchone()
    return None if row is None else row[0]
