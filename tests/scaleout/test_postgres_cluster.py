"""Scale-out on PostgreSQL: 2 receiving processes and 3 worker processes share one database and one data directory.

Twelve phantom series are sent at once by four storescu processes to the two
receivers. One worker is killed (SIGKILL) while it runs a job and one while it
is sending results: after their leases run out, the surviving workers take the
job and the exports over. Every series ends with exactly one job, done, and
every result is in Orthanc exactly once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from phantoms.chest import make_phantom, write_phantom_series
from tests.dcmtk import dcmtk_env, require
from tests.export.peers import Orthanc, wait_for
from tests.node_process import NodeProcess
from tests.postgres import fresh_postgres_schema

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # 47 s: five node processes and Orthanc, outside the default suite's budget

SERIES = 12
LEASE_SECONDS = 3.0
PROCESSING_SECONDS = 600  # 12 jobs on a 2-core CI machine shared with 5 node processes and Orthanc


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def series_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("series")
    dirs = []
    for k in range(SERIES):
        folder = root / f"s{k:02d}"
        write_phantom_series(make_phantom((64, 64, 24), 0.1, seed=k), folder, patient_id=f"SCALE{k:02d}")
        dirs.append(folder)
    return dirs


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    pacs = Orthanc(tmp_path / "orthanc")
    pacs.start()
    yield pacs
    os.kill(pacs.process.pid, signal.SIGCONT)  # in case the test stopped it
    pacs.stop(signal.SIGKILL)


def cluster_settings(name: str, database_url: str, data_dir: Path, orthanc: Orthanc) -> dict[str, Any]:
    return {
        "node": {"name": name, "data_dir": str(data_dir), "log_level": "INFO"},
        "database": {"url": database_url},
        "jobs": {"settle_seconds": 1.0, "poll_seconds": 0.5, "lease_seconds": LEASE_SECONDS, "workers": 1},
        "export": {
            "lease_seconds": LEASE_SECONDS,
            "poll_seconds": 0.5,
            "retry_initial_seconds": 0.5,
            "retry_max_seconds": 2.0,
            "connection_timeout": 5.0,
            "acse_timeout": 120.0,
            "calling_ae_title": "CLARA",
        },
        "destinations": [{"name": "PACS", "ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port}],
        "pipelines": {"covid19_ct": {"destinations": ["PACS"]}},
    }


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def owner_pid(owner: str) -> int:
    """`<node>/<host>/<pid>[/worker-n]` -> pid."""
    return int(owner.split("/")[2])


def kill_owner(owner: str, workers: list[NodeProcess], database_url: str) -> tuple[NodeProcess, set[int]]:
    """SIGKILL the worker process behind `owner`; return it and the jobs it was running at that moment."""
    [victim] = [w for w in workers if w.proc is not None and w.proc.pid == owner_pid(owner)]
    victim.kill()
    prefix = "/".join(owner.split("/")[:3]) + "/"
    running = {job_id for job_id, worker in query(database_url, "SELECT id, worker FROM job WHERE state = 'running'") if worker.startswith(prefix)}
    return victim, running


def test_two_receivers_three_workers_each_job_and_export_exactly_once_despite_killed_workers(
    database_url: str, series_dirs: list[Path], orthanc: Orthanc, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared-data"
    nodes: list[NodeProcess] = []

    def start(command: str, name: str, *args: str) -> NodeProcess:
        node = NodeProcess(tmp=tmp_path / name, command=command, serve_args=args)
        node.tmp.mkdir()
        node.settings = cluster_settings(name, database_url, data_dir, orthanc)
        nodes.append(node)
        return node.start(timeout=120)

    try:
        receivers = [start("serve", f"receiver-{k}", "--workers", "0", "--no-export") for k in (1, 2)]
        workers = [start("worker", f"worker-{k}") for k in (1, 2, 3)]
        os.kill(orthanc.process.pid, signal.SIGSTOP)  # results wait in flight until both kills are done

        senders = [
            subprocess.Popen(
                [require("storescu"), "-aet", f"MODALITY{k}", "-aec", "CLARA", "+sd", "+r", "-to", "60", "-ta", "60", "-td", "60",
                 "127.0.0.1", str(receivers[k % 2].port), *map(str, series_dirs[k::4])],
                env=dcmtk_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for k in range(4)
        ]
        for sender in senders:
            output, _ = sender.communicate(timeout=300)
            assert sender.returncode == 0, output

        def running_job() -> tuple[int, str] | None:
            rows = query(database_url, "SELECT id, worker FROM job WHERE state = 'running'")
            return rows[0] if rows else None

        job_id, job_owner = wait_for(running_job, PROCESSING_SECONDS, "a job running on a worker", interval=0.05)
        killed_in_job, running = kill_owner(job_owner, workers, database_url)
        assert job_id in running
        interrupted = Counter(running)

        def sending_export() -> str | None:
            rows = query(database_url, "SELECT owner FROM export WHERE state = 'sending'")
            alive = [owner for (owner,) in rows if owner_pid(owner) != killed_in_job.proc.pid]
            return alive[0] if alive else None

        export_owner = wait_for(sending_export, PROCESSING_SECONDS, "results in flight to the stopped PACS", interval=0.05)
        _, running = kill_owner(export_owner, workers, database_url)
        interrupted.update(running)
        in_flight = {uid for (uid,) in query(database_url, f"SELECT sop_instance_uid FROM export WHERE owner = '{export_owner}'")}
        os.kill(orthanc.process.pid, signal.SIGCONT)
        # A Kubernetes Deployment would restart the killed pods; one replacement is enough here.
        start("worker", "worker-4")

        def all_processed() -> bool:
            states = query(database_url, "SELECT state, count(*) FROM job GROUP BY state")
            exports = query(database_url, "SELECT state, count(*) FROM export GROUP BY state")
            return dict(states) == {"done": SERIES} and bool(exports) and dict(exports).keys() == {"sent"}

        wait_for(all_processed, PROCESSING_SECONDS, "every job done and every export sent", interval=1.0)

        per_series = query(
            database_url, "SELECT s.series_instance_uid, count(j.id) FROM series s LEFT JOIN job j ON j.series_fk = s.id GROUP BY s.series_instance_uid"
        )
        assert len(per_series) == SERIES and {count for _, count in per_series} == {1}, "exactly one job per series"
        assert query(database_url, "SELECT count(*) FROM instance") == [(SERIES * 24,)]
        attempts = dict(query(database_url, "SELECT id, attempts FROM job"))
        assert attempts == {job: 1 + interrupted[job] for job in attempts}, "each kill cost its running job one attempt, nothing else ran twice"
        [(worker,)] = query(database_url, f"SELECT worker FROM job WHERE id = {job_id}")
        assert owner_pid(worker) != killed_in_job.proc.pid

        exports = query(database_url, "SELECT sop_instance_uid, owner, attempts FROM export")
        uids = orthanc.sop_instance_uids()
        results_in_orthanc = {uid for uid in uids if uid in {e[0] for e in exports}}
        assert len(uids) == len(set(uids)), "Orthanc holds each object once"
        assert results_in_orthanc == {uid for uid, _, _ in exports}, "every result is in the PACS"
        assert in_flight and in_flight <= results_in_orthanc, "the exports in flight at the kill were taken over and delivered"
        logs = "\n".join(node.log() for node in nodes)
        # A loaded machine may time out an association or a DIMSE answer; that attempt is recorded and retried, and
        # is logged as such. Any other extra attempt would be a sender recording a row it did not own.
        retried = Counter(int(n) for n in re.findall(r"export (\d+) to PACS: .*; next attempt at", logs))
        recorded = dict(query(database_url, "SELECT id, attempts FROM export"))
        assert recorded == {export: 1 + retried[export] for export in recorded}, "each export recorded once per attempt the node logged"
        assert "stopped renewing its lease" in logs and "stopped while sending it" in logs
        assert logs.count("listening for job and export notifications") >= len(nodes), "every process woken by NOTIFY"
        assert len({owner_pid(o) for o in query_workers(database_url)}) >= 2, "the work was spread over several workers"
    finally:
        for node in nodes:
            node.stop()


def query_workers(database_url: str) -> list[str]:
    return [worker for (worker,) in query(database_url, "SELECT worker FROM job")]
