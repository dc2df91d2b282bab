"""Wake idle workers and export senders when there is work, instead of every process polling the database.

In one process a committed job or export sets an event that its waiting
threads see at once. On PostgreSQL the same commit also sends a NOTIFY (it is
delivered only if the transaction commits), and a listener thread in every
process turns it into the same event: adding processes does not add polling.
Waiting always has a timeout, the fallback that also finds expired leases and
rows whose `not_before` has come. The "config" channel tells every process that the run-time configuration
changed (`live_config.py`).
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Literal

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Channel = Literal["jobs", "exports", "config"]
CHANNELS: tuple[Channel, ...] = ("jobs", "exports", "config")
RECONNECT_SECONDS = 2.0


def _pg_channel(channel: Channel) -> str:
    return f"dicom_node_{channel}"


class Wakeups:
    """Per channel, a count of wake-ups and a condition to wait on it.

    A waiter reads the count (`seen`) before it looks for work and then waits for a count above it,
    so a wake-up that comes while it looks is never lost, whatever other threads wait on the
    channel (a shared event cleared by one waiter could swallow another's wake-up, which then
    waited its whole poll interval).
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self._conditions = {channel: threading.Condition() for channel in CHANNELS}
        self._counts = {channel: 0 for channel in CHANNELS}
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
        event.listen(session, "after_commit", lambda _session: self.wake(channel), once=True)

    def wake(self, channel: Channel) -> None:
        with self._conditions[channel]:
            self._counts[channel] += 1
            self._conditions[channel].notify_all()

    def seen(self, channel: Channel) -> int:
        """The channel's wake-up count: read it before looking for work, pass it to `wait`."""
        with self._conditions[channel]:
            return self._counts[channel]

    def wait(self, channel: Channel, timeout: float, seen: int) -> bool:
        """Sleep until `channel` is woken after `seen` (see `seen`) or `timeout` passes; True if woken."""
        with self._conditions[channel]:
            return self._conditions[channel].wait_for(lambda: self._counts[channel] != seen, timeout)

    def serve(
        self, channel: Channel, stopping: threading.Event, poll_seconds: float, lease_seconds: float, look: Callable[[], bool]
    ) -> None:
        """Call `look` (True: it found work) until `stopping` is set; after a look that found nothing, sleep until the
        channel is woken, or for the poll interval, or, while notifications reach this process from every process,
        half a lease (the fallback that finds expired leases and postponed rows coming due)."""
        while not stopping.is_set():
            seen = self.seen(channel)
            if not look():
                self.wait(channel, max(poll_seconds, lease_seconds / 2) if self.listening else poll_seconds, seen)

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
