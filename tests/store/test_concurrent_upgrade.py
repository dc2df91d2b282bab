"""Receivers and workers starting together on a new PostgreSQL each bring the schema to head (compose, a Helm
release): one at a time, the others find it done. Before, two created alembic_version at once and one process
exited with a UniqueViolation (found by tests/deploy/test_images.py's compose run)."""

from __future__ import annotations

import os
import time
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.node_process import REPO
from tests.postgres import fresh_postgres_schema

pytestmark = pytest.mark.postgres
PROCESSES = 4


def test_processes_upgrading_a_new_database_at_once_all_succeed() -> None:
    with fresh_postgres_schema() as url:
        # Separate processes, as the containers are (alembic's context is global to a process); they start
        # together and wait for one another's import, then race to the database.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_NODE_")} | {"PYTHONPATH": str(REPO)}
        code = (
            "import sys, time; from dicom_node.store.db import upgrade; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade(sys.argv[1])"
        )
        at = str(time.time() + 8)  # after every process has imported the node's modules
        processes = [subprocess.Popen([sys.executable, "-P", "-c", code, url, at], env=env, stderr=subprocess.PIPE, text=True)
                     for _ in range(PROCESSES)]
        errors = [process.communicate(timeout=120)[1] for process in processes]
        assert [process.returncode for process in processes] == [0] * PROCESSES, errors
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            assert len(connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()) == 1
        engine.dispose()
