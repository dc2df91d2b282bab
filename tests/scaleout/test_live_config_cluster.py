"""Scale-out on PostgreSQL: a destination added over REST on the receiver reaches a worker process started before
the change (LISTEN/NOTIFY), within a second, and that worker sends the next job's results there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from phantoms.chest import make_phantom, write_phantom_series
from tests.dcmtk import Storescp, storescu
from tests.export.peers import wait_for
from tests.node_process import NodeProcess, free_port, wait_for_port
from tests.postgres import fresh_postgres_schema
from tests.scaleout.test_postgres_cluster import query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
TOKEN = "scale-0ut-admin"


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_postgres_schema() as url:
        yield url


def settings(name: str, database_url: str, data_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": {"name": name, "data_dir": str(data_dir), "log_level": "INFO"},
        "database": {"url": database_url},
        "jobs": {"settle_seconds": 1.0, "poll_seconds": 0.5, "workers": 1},
        "export": {"poll_seconds": 0.5, "retry_initial_seconds": 0.5, "calling_ae_title": "CLARA"},
    } | sections


def test_a_destination_added_over_rest_reaches_a_worker_started_before_the_change(database_url: str, tmp_path: Path) -> None:
    data_dir, http_port, pacs_port = tmp_path / "shared-data", free_port(), free_port()
    receiver = NodeProcess(tmp=tmp_path / "receiver", serve_args=("--workers", "0", "--no-export"))
    receiver.settings = settings("receiver", database_url, data_dir, http={"port": http_port, "tokens": {"admin": TOKEN}})
    worker = NodeProcess(tmp=tmp_path / "worker", command="worker")
    worker.settings = settings("worker", database_url, data_dir)
    series = tmp_path / "series"
    write_phantom_series(make_phantom((64, 64, 24), 0.1, seed=5), series, patient_id="SCALELIVE")
    nodes = [receiver, worker]
    try:
        for node in nodes:
            node.tmp.mkdir()
            node.start(timeout=120)
        assert "listening for job and export notifications" in worker.log()
        with Storescp(pacs_port, tmp_path / "newpacs", ae="NEWPACS") as pacs:
            wait_for_port(pacs_port, 10, pacs.proc)
            api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {TOKEN}", "Host": "localhost"})
            added = api.post("/api/config/destination", json={"name": "NEWPACS", "ae_title": "NEWPACS", "host": "127.0.0.1", "port": pacs_port,
                                                             "pipelines": ["covid19_ct"]})
            assert added.status_code == 201, added.text
            added_at = time.monotonic()
            wait_for(lambda: "destinations NEWPACS" in worker.log(), 5, "the new destination in the worker", interval=0.01)
            seconds = time.monotonic() - added_at
            print(f"destination added over REST: in force in the worker {seconds:.3f} s after the answer")
            assert seconds < 1.0, f"the worker applied the change {seconds:.2f} s after the answer"

            assert storescu(receiver.port, series, calling="MODALITY").returncode == 0
            uid = str(pydicom.dcmread(next(series.rglob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID)
            done = f"SELECT j.id, j.state, j.worker FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = '{uid}'"
            [(job_id, state, owner)] = wait_for(lambda: [row for row in query(database_url, done) if row[1] == "done"], 300, "the job done")
            assert owner.startswith("worker/")
            sent = f"SELECT count(*) FROM export WHERE job_fk = {job_id} AND destination = 'NEWPACS' AND state = 'sent'"
            wait_for(lambda: query(database_url, sent)[0][0] >= 2, 60, "the results sent to NEWPACS by the worker")
            received = {str(pydicom.dcmread(path, stop_before_pixels=True).Modality) for path in pacs.out_dir.iterdir()}
            assert {"SEG", "SR"} <= received
        audited = (data_dir / "access.log").read_text()
        assert '"identity":"token:admin","event":"config","action":"add","kind":"destination","name":"NEWPACS"' in audited
    finally:
        for node in nodes:
            node.stop()
