"""A series sent half-way on an aborted association gives no job until a normal release completes it, or until the
grace period has passed (the job then says its input may be incomplete)."""

from __future__ import annotations

import time
from pathlib import Path

import pydicom

from tests.dcmtk import storescu
from tests.dicom_senders import send_then_abort
from tests.export.peers import wait_for
from tests.node.index import jobs, query
from tests.node_process import shared_series

B40F = shared_series("lung-pet-ct-dx", "A0002-B40f")
B70F = shared_series("lung-pet-ct-dx", "A0002-B70f")
GRACE = 8.0


def series_uid(folder: Path) -> str:
    return str(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID)


def test_an_aborted_send_is_held_until_completed_or_the_grace_period_ends(node_factory) -> None:
    node = node_factory(settings={"jobs": {"settle_seconds": 0.2, "incomplete_grace_seconds": GRACE}}).start()
    held, late = series_uid(B40F), series_uid(B70F)
    aborted_at = time.monotonic()
    assert send_then_abort(node.port, sorted(B40F.glob("*.dcm"))[:24]) == 24
    assert send_then_abort(node.port, sorted(B70F.glob("*.dcm"))[:24]) == 24
    time.sleep(1.0)  # five settle windows
    assert time.monotonic() - aborted_at < GRACE and jobs(node.data_dir) == [], "24 of 30 slices on aborted associations: no job"

    sent = storescu(node.port, B40F, compressed=False)  # the whole series; its first 24 are kept as duplicates
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: jobs(node.data_dir), 10, "the completed series' job")
    assert jobs(node.data_dir) == [(held, "queued", 30)]
    wait_for(lambda: len(jobs(node.data_dir)) == 2, GRACE + 10, "the job of the series nobody completed")
    assert time.monotonic() - aborted_at >= GRACE
    assert jobs(node.data_dir)[1] == (late, "queued", 24)
    reasons = dict(query(node.data_dir, "SELECT s.series_instance_uid, j.input_incomplete FROM job j JOIN series s ON s.id = j.series_fk"))
    assert reasons[held] == "" and reasons[late] == f"not completed by a normal release within {GRACE:g} s"
    log = node.log()
    assert "held back until a sender completes them" in log and "its input may be incomplete" in log
