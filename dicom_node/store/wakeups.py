"""Wake idle workers and export senders when there is work, instead of every process polling the database.

In one process a committed job or export sets an event that its waiting
threads see at once. On PostgreSQL the same commit also sends a NOTIFY (it is
delivered only if the transaction commits), and a listener thread in every
process turns it into the same event: adding processes does not add polling.
Waiting always has a timeout, the fallback that also finds expired leases and
rows whose `not_before` has come.
"""

from __future__ import annotations

import logging
import select
import threading
from typing import Literal

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Channel = Literal["jobs", "exports"]
CHANNELS: tuple[Channel, ...] = ("jobs", "exports")
RECONNECT_SECONDS = 2.0


def _pg_channel(channel: Channel) -> str:
    return f"dicom_node_{channel}"


def idle_wait(poll_seconds: float, lease_seconds: float, wakeups: Wakeups) -> float:
    """How long an idle thread sleeps: its poll interval, or while notifications reach it from every process,
    half a lease (the fallback that finds expired leases and postponed rows coming due)."""
    return max(poll_seconds, lease_seconds / 2) if wakeups.listening else poll_seconds


class Wakeups:
    def __init__(self, engine: Engine | None = None) -> None:
        self._events = {channel: threading.Event() for channel in CHANNELS}
        self._engine = engine if engine is not None and engine.dialect.name == "postgresql" else None
        self.listening = False

    @property
    def shared(self) -> bool:
        """True when other processes' commits wake this one too (PostgreSQL LISTEN/NOTIFY)."""
        return self._engine is not None

    def notify_in(self, session: Session, channel: Channel) -> None:
        """Wake the waiters of `channel` once `session`'s transaction has committed (never on rollback)."""
        if self._engine is not None:
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": _pg_channel(channel)})
        event.listen(session, "after_commit", lambda _session: self._events[channel].set(), once=True)

    def wake(self, channel: Channel) -> None:
        self._events[channel].set()

    def wait(self, channel: Channel, timeout: float) -> bool:
        """Sleep until `channel` is notified or `timeout` passes; True if notified."""
        notified = self._events[channel].wait(timeout)
        self._events[channel].clear()
        return notified

    def listen(self, stopping: threading.Event) -> None:
        """PostgreSQL only: turn other processes' NOTIFYs into local wake-ups until `stopping` is set."""
        if self._engine is None:
            return
        failing = False
        while not stopping.is_set():
            try:
                self._listen_once(stopping)
            except Exception as exc:  # the database went away: wake everyone (they poll) and reconnect
                if not failing:
                    log.warning("LISTEN connection to the database lost (%s); polling until it is back", exc)
                failing = True
                self.listening = False
                for channel in CHANNELS:
                    self.wake(channel)
                stopping.wait(RECONNECT_SECONDS)
            else:
                failing = False

    def _listen_once(self, stopping: threading.Event) -> None:
        assert self._engine is not None
        pooled = self._engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # held for good: never handed back to the pool
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for channel in CHANNELS:
                    cursor.execute(f"LISTEN {_pg_channel(channel)}")
            self.listening = True
            log.info("listening for job and export notifications (PostgreSQL LISTEN/NOTIFY)")
            while not stopping.is_set():
                if select.select([connection], [], [], 1.0)[0]:
                    connection.poll()
                    for notification in connection.notifies:
                        for channel in CHANNELS:
                            if notification.channel == _pg_channel(channel):
                                self.wake(channel)
                    connection.notifies.clear()
        finally:
            self.listening = False
            connection.close()
