"""Read the node's SQLite index from a test, as an operator would with sqlite3."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def query(data_dir: Path, sql: str, *args: object) -> list[tuple]:
    con = sqlite3.connect(data_dir / "index.sqlite3", timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def jobs(data_dir: Path) -> list[tuple[str, str, int]]:
    """(series UID, state, instance count) of every job, oldest first."""
    return query(
        data_dir,
        "SELECT s.series_instance_uid, j.state, j.instance_count FROM job j JOIN series s ON s.id = j.series_fk ORDER BY j.id",
    )


def wait_for_jobs(data_dir: Path, count: int, timeout: float = 30) -> list[tuple[str, str, int]]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = jobs(data_dir) if (data_dir / "index.sqlite3").exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"expected {count} job(s), found {jobs(data_dir)}")


FINISHED = ("done", "skipped", "failed")


def wait_for_finished_job(data_dir: Path, series_instance_uid: str, timeout: float = 120, pipeline: str | None = None) -> tuple[int, str, str]:
    """(id, state, reason) of the newest job of a series (of `pipeline`'s jobs only, if given) once it is done,
    skipped or failed."""
    import time

    sql = (
        "SELECT j.id, j.state, j.reason FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ? "
        "AND (? IS NULL OR j.pipeline = ?) ORDER BY j.id DESC LIMIT 1"
    )
    deadline = time.monotonic() + timeout
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        rows = query(data_dir, sql, series_instance_uid, pipeline, pipeline) if (data_dir / "index.sqlite3").exists() else []
        if rows and rows[0][1] in FINISHED:
            return rows[0]
        time.sleep(0.3)
    raise TimeoutError(f"the {pipeline or 'newest'} job of series {series_instance_uid} did not finish in {timeout} s: {rows}")
