"""Waking the threads of one process when there is work for them, instead of letting them poll for it.

The scheduler is woken when an association ends, the workers when a job is
queued, the export senders when a job's results are in the outbox.  Polling
stays as the fallback (another process sharing the database queued the work,
or a retry fell due), so a lost nudge costs at most one poll interval.
"""

from __future__ import annotations

import threading


class Wakeup:
    """One kind of work; each waiting thread listens with an Event of its own.

    A thread clears its Event before it looks for work and waits on it after
    finding none, so a notify() that comes in between is never lost, and one
    thread's clear() never swallows another thread's nudge.
    """

    def __init__(self) -> None:
        self._listeners: list[threading.Event] = []
        self._lock = threading.Lock()

    def listener(self) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._listeners.append(event)
        return event

    def notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in listeners:
            event.set()
