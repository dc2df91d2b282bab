"""A backup taken while four associations send restores to a node that lists every instance acknowledged before
it and redoes nothing that was done (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from dicom_node.store.backup import BackupError, backup
from tests.dcmtk import dcmtk_env, require, storescu
from tests.node.index import query, wait_for_finished_job
from tests.node_process import free_port, shared_series, wait_for_port

FIRST = ("lung-pet-ct-dx", "A0002-B40f")
SENT_DURING = [("covid-ct-md", "P001"), ("covid-ct-md", "normal001"), ("lidc-idri", "LIDC-IDRI-0001"), ("lung-pet-ct-dx", "A0002-B70f")]


def indexed(data_dir: Path) -> dict[str, str]:
    return dict(query(data_dir, "SELECT sop_instance_uid, path FROM instance"))


@pytest.mark.slow  # 45-70 s on the 2-core machine: three node starts and 465 instances
def test_a_backup_during_a_four_association_ingest_restores_every_acknowledged_instance_and_redoes_nothing(
    node_factory, tmp_path: Path
) -> None:
    during = [shared_series(*parts) for parts in SENT_DURING]
    first = tmp_path / "first"  # a few slices: their job ends at once (skipped), before the backup
    first.mkdir()
    for path in sorted(shared_series(*FIRST).glob("*.dcm"))[:4]:
        shutil.copy(path, first)
    # The settle window holds the four series' jobs back until the node has stopped: the test measures no pipeline.
    node = node_factory(settings={"jobs": {"workers": 1, "settle_seconds": 3.0}}).start()
    assert storescu(node.port, first, compressed=False).returncode == 0
    first_uid = query(node.data_dir, "SELECT series_instance_uid FROM series")[0][0]
    job_id, state, _ = wait_for_finished_job(node.data_dir, first_uid, timeout=120)
    first_job = query(node.data_dir, "SELECT id, state, finished_at, attempts FROM job WHERE id = ?", job_id)

    senders = [
        subprocess.Popen(
            [require("storescu"), "-aec", "CLARA", "-xs", "+sd", "+r", "127.0.0.1", str(node.port), str(folder)],
            env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for folder in during
    ]
    total = len(indexed(node.data_dir)) + sum(len(list(folder.glob("*.dcm"))) for folder in during)
    deadline = time.monotonic() + 60
    while len(indexed(node.data_dir)) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    acknowledged = indexed(node.data_dir)  # the answer to a C-STORE follows its committed row
    open_associations = query(node.data_dir, "SELECT count(*) FROM association WHERE ended_at IS NULL")[0][0]
    report = backup(f"sqlite:///{node.data_dir / 'index.sqlite3'}", node.data_dir, tmp_path / "backup")
    assert all(sender.wait(120) == 0 for sender in senders)
    node.stop()
    assert len(indexed(node.data_dir)) == total
    full = node.cli("backup", str(tmp_path / "full-backup"))  # the command (a stopped node is backed up the same way)

    print(f"backup during the ingest: {open_associations} associations open, {len(acknowledged)} instances acknowledged "
          f"before it, {report.instances} in it, {total} in the end")  # the figures, with -s
    assert open_associations >= 2, "the backup was meant to be taken while the associations send"
    assert len(acknowledged) <= report.instances < total and not report.missing, (len(acknowledged), report, total)
    assert f"{total} instance file(s)" in full.stdout, full.stdout
    with pytest.raises(BackupError, match="not empty"):
        backup(f"sqlite:///{node.data_dir / 'index.sqlite3'}", node.data_dir, tmp_path / "backup")

    # Restore: the backup folder becomes a new node's data dir.
    http_port = free_port()
    restored = node_factory(settings={"jobs": {"workers": 0}, "http": {"port": http_port}})
    shutil.copytree(tmp_path / "backup", restored.data_dir)
    restored.start()
    wait_for_port(http_port, 30, restored.proc)
    rows = indexed(restored.data_dir)
    assert acknowledged.keys() <= rows.keys() and len(rows) == report.instances
    for uid, path in rows.items():
        assert (restored.data_dir / path).read_bytes() == (node.data_dir / path).read_bytes(), uid
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/series?limit=1000") as answer:
        listed = {row["series_instance_uid"]: row["instance_count"] for row in json.load(answer)}
    per_series = Counter(uid for (uid,) in query(restored.data_dir, "SELECT s.series_instance_uid FROM instance i JOIN series s ON s.id = i.series_fk"))
    assert listed == dict(per_series)

    # Nothing finished is done again: the first series keeps its one finished job, untouched.
    time.sleep(2)  # the restored node's scheduler has run (it queues the series cut by the backup)
    assert query(restored.data_dir, "SELECT id, state, finished_at, attempts FROM job WHERE id = ?", job_id) == first_job
    assert query(restored.data_dir, "SELECT count(*) FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ?", first_uid) == [(1,)]
    assert f"job {job_id} " not in restored.log()


def test_the_backup_command_copies_the_index_and_its_files_and_refuses_a_used_folder(tmp_path: Path) -> None:
    from tests.web.conftest import build_site, p001_files

    site = build_site(tmp_path / "site", p001_files()[-25:], done=False)
    url = f"sqlite:///{site.data_dir / 'index.sqlite3'}"
    report = backup(url, site.data_dir, tmp_path / "backup")
    assert (report.instances, report.missing) == (25, [])
    copied = indexed(tmp_path / "backup")
    assert copied == indexed(site.data_dir)
    for path in copied.values():
        assert (tmp_path / "backup" / path).read_bytes() == (site.data_dir / path).read_bytes()
    with pytest.raises(BackupError, match="is not empty: back up into a new folder"):
        backup(url, site.data_dir, tmp_path / "backup")
    with pytest.raises(BackupError, match="inside the data folder"):
        backup(url, site.data_dir, site.data_dir / "backup")
    with pytest.raises(BackupError, match="no index at"):
        backup(f"sqlite:///{tmp_path / 'nowhere' / 'index.sqlite3'}", tmp_path / "nowhere", tmp_path / "other")
    assert not (tmp_path / "other").exists()


@pytest.mark.postgres
def test_a_postgresql_index_is_dumped_on_the_snapshot_its_file_list_comes_from(tmp_path: Path) -> None:
    from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
    from dicom_node.store.models import Instance, Patient, Series, Study
    from tests.postgres import fresh_postgres_schema

    data_dir = tmp_path / "var"
    (data_dir / "instances").mkdir(parents=True)
    (data_dir / "instances" / "a.dcm").write_bytes(b"instance a")
    with fresh_postgres_schema() as url:
        upgrade(url)
        engine = make_engine(url)
        with make_sessionmaker(engine).begin() as session:
            series = Series(series_instance_uid="1.2.3", study=Study(study_instance_uid="1.2", patient=Patient(patient_id="P")))
            session.add(Instance(sop_instance_uid="1.2.3.4", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", series=series, path="instances/a.dcm", size=10,
                                 transfer_syntax_uid="1.2.840.10008.1.2.1"))
        engine.dispose()
        report = backup(url, data_dir, tmp_path / "backup")
        schema = url.rsplit("%3D", 1)[1]
    assert (report.instances, report.missing) == (1, [])
    assert (tmp_path / "backup" / "instances" / "a.dcm").read_bytes() == b"instance a"
    listing = subprocess.run(["pg_restore", "--list", str(tmp_path / "backup" / "index.pgdump")], capture_output=True, text=True, check=True).stdout
    assert f"TABLE DATA {schema} instance" in listing and "TABLE DATA public" not in listing
