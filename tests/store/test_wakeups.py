"""Wake-ups reach every idle worker, including one that was still looking for work when the wake-up came."""

from __future__ import annotations

import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from dicom_node.store.wakeups import Wakeups


def test_a_wake_up_while_looking_for_work_is_not_lost_when_another_waiter_took_it_first() -> None:
    wakeups = Wakeups()
    seen_by_idle = wakeups.seen("jobs")  # an idle worker waits
    seen_by_busy = wakeups.seen("jobs")  # another worker looks for work: nothing found yet
    wakeups.wake("jobs")  # a job is committed meanwhile
    assert wakeups.wait("jobs", 30, seen_by_idle) is True  # the idle worker wakes first (and takes the job)
    started = time.monotonic()
    assert wakeups.wait("jobs", 30, seen_by_busy) is True  # the other one must not sleep through it either
    assert time.monotonic() - started < 1


def test_one_wake_up_reaches_every_waiter_even_if_one_has_already_moved_on() -> None:
    wakeups = Wakeups()
    woken: list[float] = []
    ready = threading.Barrier(3)

    def waiter() -> None:
        seen = wakeups.seen("exports")
        ready.wait()
        if wakeups.wait("exports", 30, seen):
            woken.append(time.monotonic())

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for thread in threads:
        thread.start()
    ready.wait()
    sent = time.monotonic()
    wakeups.wake("exports")
    for thread in threads:
        thread.join(timeout=30)
    assert len(woken) == 2 and max(woken) - sent < 1
    assert wakeups.wait("jobs", 0.05, wakeups.seen("jobs")) is False  # the other channel was not woken


def test_only_a_committed_transaction_wakes() -> None:
    wakeups = Wakeups()
    engine = create_engine("sqlite://")
    for commit in (False, True):
        seen = wakeups.seen("jobs")
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            wakeups.notify_in(session, "jobs")
            session.commit() if commit else session.rollback()
        assert wakeups.wait("jobs", 0.05 if not commit else 5, seen) is commit
