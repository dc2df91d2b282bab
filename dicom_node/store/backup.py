"""An online backup of the node: the index at one instant, then exactly the files that index names.

Why this order is consistent: the receive path makes an instance's file durable before it commits the
instance's row, and a job's result folder is complete before the job is marked done. So every file a snapshot
of the index names was already complete when the snapshot was taken, and copying those files afterwards gives
a backup in which every row has its file, while the node keeps receiving. Files that arrive after the snapshot
are left out with their rows; a file the snapshot names that is gone by the time it is copied (retention
deleted its series meanwhile) is reported, not silently skipped.

SQLite: the index is copied with SQLite's online backup API (a read transaction, which in WAL mode blocks no
writer). PostgreSQL: `pg_dump` runs on a snapshot exported by a REPEATABLE READ transaction, in which the
file list is read too. The backup folder has the data dir's layout (plus `index.pgdump` for PostgreSQL), so
restoring is copying it back (docs/operations.md).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dicom_node.store.db import sqlite_path
from dicom_node.store.shared_storage import TOKEN_FILE

PGDUMP_NAME = "index.pgdump"


class BackupError(Exception):
    """The backup cannot be made (the message says why and what to do)."""


@dataclass(frozen=True)
class IndexSnapshot:
    """What the index named at the backup's instant: instance files and the done jobs, whose result folders go along."""

    instance_paths: list[str]
    job_ids: list[int]


@dataclass
class BackupReport:
    destination: Path
    instances: int = 0
    result_folders: int = 0
    missing: list[str] = field(default_factory=list)

    def text(self) -> str:
        line = f"backup in {self.destination}: index, {self.instances} instance file(s), {self.result_folders} result folder(s)"
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (" ..." if len(self.missing) > 5 else "")
            line += f"; {len(self.missing)} file(s) the index named were deleted meanwhile (retention?): {shown}"
        return line


def _read_snapshot(rows: Iterable[tuple[str]], jobs: Iterable[tuple[int]]) -> IndexSnapshot:
    return IndexSnapshot([path for (path,) in rows], [job_id for (job_id,) in jobs])


INSTANCE_PATHS = "SELECT path FROM instance ORDER BY id"
JOB_IDS = "SELECT id FROM job WHERE state = 'done' ORDER BY id"  # a done job's result folder is complete


def _sqlite_snapshot(index: Path, destination: Path) -> IndexSnapshot:
    copy = destination / index.name
    source = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)  # one step: a consistent copy of the committed state at one instant
        target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file; the node sets WAL again
        snapshot = _read_snapshot(target.execute(INSTANCE_PATHS), target.execute(JOB_IDS))
    finally:
        target.close()
        source.close()
    return snapshot


def _pg_dump_target(url: str) -> list[str]:
    """pg_dump's arguments for the node's SQLAlchemy URL: the libpq form (postgresql+psycopg2:// -> postgresql://),
    and only the node's schema when the URL sets a search_path (a database shared with other applications)."""
    parsed = make_url(url)
    schema = re.search(r"search_path=([\w$]+)", str(parsed.query.get("options", "")))
    return [*([f"--schema={schema.group(1)}"] if schema else []), parsed.set(drivername="postgresql").render_as_string(hide_password=False)]


def _postgres_snapshot(url: str, destination: Path) -> IndexSnapshot:
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed: install PostgreSQL's client programs (Debian: postgresql-client)")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                dump = subprocess.run(
                    ["pg_dump", "--format=custom", f"--snapshot={snapshot_id}", f"--file={destination / PGDUMP_NAME}", *_pg_dump_target(url)],
                    capture_output=True, text=True,
                )
                if dump.returncode != 0:
                    raise BackupError(f"pg_dump failed: {dump.stderr.strip()}")
                return _read_snapshot(conn.execute(text(INSTANCE_PATHS)), conn.execute(text(JOB_IDS)))
    finally:
        engine.dispose()


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def backup(database_url: str, data_dir: Path, destination: Path) -> BackupReport:
    """Back up the index and its files into `destination` (a new or empty folder), while the node runs."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: back up into a new folder")
    if destination.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError(f"{destination} is inside the data folder {data_dir}: back up elsewhere (another disk)")
    index = sqlite_path(database_url)
    if index is not None and not index.exists():
        raise BackupError(f"no index at {index}: is the data folder right (--data-dir, --config, node.data_dir)?")
    destination.mkdir(parents=True, exist_ok=True)
    destination.chmod(0o700)  # patient data: as private as the data dir (the command's umask makes the files 0600)
    snapshot = _sqlite_snapshot(index, destination) if index is not None else _postgres_snapshot(database_url, destination)
    report = BackupReport(destination)
    if (data_dir / TOKEN_FILE).exists():  # the index's storage token: the restored index accepts the restored folder
        _copy(data_dir / TOKEN_FILE, destination / TOKEN_FILE)
    for relpath in snapshot.instance_paths:
        try:
            _copy(data_dir / relpath, destination / relpath)
            report.instances += 1
        except FileNotFoundError:
            report.missing.append(relpath)
    for job_id in snapshot.job_ids:
        folder = Path("results") / str(job_id)
        if (data_dir / folder).is_dir():
            shutil.copytree(data_dir / folder, destination / folder, copy_function=shutil.copyfile)
            report.result_folders += 1
    os.sync()  # the backup is on disk when the command returns
    return report
