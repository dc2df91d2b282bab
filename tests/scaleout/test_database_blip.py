"""The database drops the node's connections (`pg_terminate_backend`, as a restart or failover does) while four
associations send to two receiving processes: every instance is acknowledged with success, none gets a failure.

Before, the receive path's idle DB-API connections each failed once after the drop ("connection already closed"),
and the next two instances at each receiver were answered with a failure status (28 of 30 acknowledged)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from phantoms.chest import make_phantom, write_phantom_series
from tests.dcmtk import dcmtk_env, require
from tests.node_process import NodeProcess
from tests.postgres import POSTGRES_ADMIN_URL, fresh_postgres_schema

pytestmark = pytest.mark.postgres

SENDERS = 4
SLICES = 80
SUCCESS = "Received Store Response (Success)"


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_postgres_schema() as url:
        yield url


def terminate_backends(admin: sa.Engine, application: str) -> int:
    """Terminate the node's database sessions (only this test's node: other tests share the server); how many."""
    with admin.connect() as conn:
        return sum(conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
        ), {"name": application}).scalars())


def instances(admin: sa.Engine, database_url: str) -> int:
    schema = database_url.rsplit("%3D", 1)[1]
    with admin.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {schema}.instance")).scalar() or 0)


def test_terminated_backends_during_a_4_association_ingest_cost_no_instance(database_url: str, tmp_path: Path) -> None:
    application = f"dn-blip-{uuid.uuid4().hex[:8]}"  # how the node's sessions are found in pg_stat_activity
    folders = []
    for k in range(SENDERS):
        folder = tmp_path / f"s{k}"
        write_phantom_series(make_phantom((128, 128, SLICES), 0.1, seed=k), folder, patient_id=f"BLIP{k}")
        folders.append(folder)
    settings = {"database": {"url": f"{database_url}&application_name={application}"}, "dicom": {"receive_processes": 2}}
    (tmp_path / "node").mkdir()
    node = NodeProcess(tmp=tmp_path / "node", settings=settings).start(timeout=120)
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    terminated: list[int] = []
    try:
        assert terminate_backends(admin, application) > 0  # the idle connections of start-up are dropped too
        args = [require("storescu"), "-v", "-aet", "BLIP", "-aec", "CLARA", "-to", "30", "-ta", "30", "-td", "30", "+sd", "+r",
                "127.0.0.1", str(node.port)]
        senders = [subprocess.Popen([*args, str(folder)], env=dcmtk_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for folder in folders]
        done = threading.Event()

        def blip() -> None:
            """Drop the node's connections whenever another tenth of the instances is in, while they arrive."""
            dropped_at = 0
            while not done.wait(0.05):
                count = instances(admin, database_url)
                if count >= dropped_at + SENDERS * SLICES // 10:
                    terminated.append(terminate_backends(admin, application))
                    dropped_at = count

        blipper = threading.Thread(target=blip)
        blipper.start()
        try:
            outputs = [sender.communicate(timeout=240)[0] for sender in senders]
        finally:
            done.set()
            blipper.join()
    finally:
        admin.dispose()
        node.stop()
    print(f"{sum(terminated)} backends terminated in {len(terminated)} rounds during the ingest: {terminated}")
    assert sum(1 for count in terminated if count) >= 5, f"the database never dropped the node's connections mid-ingest: {terminated}"
    for sender, output in zip(senders, outputs):
        assert sender.returncode == 0, output[-2000:]
        assert output.count(SUCCESS) == SLICES, [line for line in output.splitlines() if "Store Response" in line and SUCCESS not in line][:5]
    admin = sa.create_engine(POSTGRES_ADMIN_URL)
    assert instances(admin, database_url) == SENDERS * SLICES
    admin.dispose()
