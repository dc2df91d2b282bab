"""The outbox's rules on a real SQLite index, with the clock passed in: backoff, horizon, lease, supersede, idempotence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import ExportSettings
from dicom_node.outcomes import Outcome, StoreResult, classify_status
from dicom_node.store.db import make_engine, make_sessionmaker
from dicom_node.store.leases import LeaseKeeper
from dicom_node.store.models import Job, utcnow
from dicom_node.store.outbox import Outbox, ResultObject
from tests.export.conftest import export_rows, result_like_objects, seed_exports

OWNER = "node-a/host/1"
SETTINGS = ExportSettings(retry_initial_seconds=5, retry_max_seconds=20, retry_horizon_seconds=60, lease_seconds=300, batch_size=10)
UNREACHABLE = StoreResult(Outcome.RETRY, None, "cannot connect")
DELIVERED = StoreResult(Outcome.DELIVERED, 0x0000, "")


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Outbox, sessionmaker[Session], int, Path]]:
    data_dir = tmp_path / "var"
    job_id = seed_exports(data_dir, result_like_objects(tmp_path / "results")[:1], ["PACS"])
    engine = make_engine(f"sqlite:///{data_dir / 'index.sqlite3'}")
    sessions = make_sessionmaker(engine)
    yield Outbox(sessions, SETTINGS, data_dir), sessions, job_id, data_dir
    engine.dispose()


def test_backoff_doubles_up_to_the_maximum_then_fails_at_the_horizon(seeded: tuple[Outbox, sessionmaker[Session], int, Path]) -> None:
    outbox, _, _, data_dir = seeded
    now = utcnow()
    delays: list[int] = []
    for _ in range(20):
        [claimed] = outbox.claim_due("PACS", OWNER, now)
        if outbox.record(claimed, UNREACHABLE, now) == "failed":
            break
        assert outbox.claim_due("PACS", OWNER, now) == [], "not due again before its backoff"
        due = datetime.fromisoformat(str(export_rows(data_dir)[0]["next_attempt_at"])).replace(tzinfo=None)  # the index is naive UTC
        delays.append(round((due - now).total_seconds()))
        now = due
    assert delays[:4] == [5, 10, 20, 20]
    assert sum(delays) == 60, "the last attempt is at the horizon"
    row = export_rows(data_dir)[0]
    assert row["state"] == "failed" and "not delivered after" in row["last_error"] and "cannot connect" in row["last_error"]
    assert row["attempts"] == len(delays) + 1


def test_warning_is_delivered_and_refusal_is_final(seeded: tuple[Outbox, sessionmaker[Session], int, Path], tmp_path: Path) -> None:
    outbox, _, job_id, data_dir = seeded
    [claimed] = outbox.claim_due("PACS", OWNER)
    assert outbox.record(claimed, classify_status(0xB000, "coerced")) == "sent"
    row = export_rows(data_dir)[0]
    assert (row["state"], row["last_status"]) == ("sent", 0xB000) and "coerced" in row["last_error"]

    outbox.enqueue(job_id, [ResultObject.from_file(Path(row["path"]), data_dir)], ["OTHER"])
    [claimed] = outbox.claim_due("OTHER", OWNER)
    assert outbox.record(claimed, classify_status(0x0122, "SOP class not supported")) == "failed"
    assert outbox.claim_due("OTHER", OWNER) == []


def test_enqueue_is_idempotent(seeded: tuple[Outbox, sessionmaker[Session], int, Path]) -> None:
    outbox, _, job_id, data_dir = seeded
    row = export_rows(data_dir)[0]
    again = ResultObject.from_file(data_dir / row["path"], data_dir)
    assert again.path == Path(row["path"])
    assert outbox.enqueue(job_id, [again], ["PACS"]) == 0
    assert outbox.enqueue(job_id, [again], ["PACS", "OTHER"]) == 1
    assert len(export_rows(data_dir)) == 2


def test_expired_lease_is_claimed_again(seeded: tuple[Outbox, sessionmaker[Session], int, Path]) -> None:
    outbox, _, _, _ = seeded
    now = utcnow()
    [first] = outbox.claim_due("PACS", OWNER, now)
    assert outbox.claim_due("PACS", "node-b/host/2", now + timedelta(seconds=299)) == [], "another sender waits for the lease"
    [again] = outbox.claim_due("PACS", "node-b/host/2", now + timedelta(seconds=301))
    assert again.id == first.id and again.owner == "node-b/host/2"
    assert outbox.record(first, DELIVERED) == "sending", "the sender that lost its lease cannot record the row any more"
    assert outbox.record(again, DELIVERED) == "sent"


def test_a_renewed_lease_is_not_taken_over(seeded: tuple[Outbox, sessionmaker[Session], int, Path]) -> None:
    outbox, sessions, _, _ = seeded
    now = utcnow()
    [first] = outbox.claim_due("PACS", OWNER, now)
    keeper = LeaseKeeper(sessions, "node-a", OWNER, job_lease_seconds=30, export_lease_seconds=300)
    assert keeper.renew(now + timedelta(seconds=200)) == (0, 1, 0)
    assert outbox.claim_due("PACS", "node-b/host/2", now + timedelta(seconds=301)) == [], "its owner renewed the lease"
    assert outbox.claim_due("PACS", "node-b/host/2", now + timedelta(seconds=501))[0].id == first.id


def test_superseded_job_is_never_sent(seeded: tuple[Outbox, sessionmaker[Session], int, Path]) -> None:
    outbox, sessions, job_id, data_dir = seeded
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="superseded"))
    assert outbox.claim_due("PACS", OWNER) == []
    row = export_rows(data_dir)[0]
    assert row["state"] == "cancelled" and "superseded" in row["last_error"]
