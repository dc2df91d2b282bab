"""Retention through the real node on a data folder of known size (a tmpfs): filled past its free-space watermark,
the oldest finished series go, a series whose job is still open stays, and the index agrees with the disk."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pydicom
import pytest

from tests.dcmtk import storescu
from tests.dicom_files import copy_with_new_uid
from tests.export.peers import P001, wait_for
from tests.mounts import tmpfs
from tests.node.index import query, wait_for_finished_job, wait_for_jobs
from tests.node_process import NodeProcess

SLICES = 15  # too few for the pipeline: the job is skipped at once, without a model


def make_series(folder: Path) -> str:
    folder.mkdir(parents=True)
    series_uid = pydicom.uid.generate_uid()
    for path in sorted(P001.glob("*.dcm"))[:SLICES]:
        copy_with_new_uid(path, folder / path.name, SeriesInstanceUID=series_uid)
    return series_uid


def files_on_disk(data_dir: Path) -> set[str]:
    """Instance files as `find` shows them, relative to the data folder; no empty folder may be left."""
    folders = [folder for folder in (data_dir / "instances").rglob("*") if folder.is_dir()]
    assert all(any(folder.iterdir()) for folder in folders), "an empty folder was left behind"
    return {str(path.relative_to(data_dir)) for path in (data_dir / "instances").rglob("*.dcm")}


def files_in_index(data_dir: Path) -> set[str]:
    return {path for (path,) in query(data_dir, "SELECT path FROM instance")}


def series_in_index(data_dir: Path) -> dict[str, int]:
    """Series UID -> instances indexed."""
    return dict(query(data_dir, "SELECT s.series_instance_uid, count(i.id) FROM series s JOIN instance i ON i.series_fk = s.id GROUP BY s.id"))


@pytest.mark.slow  # 18 s; the default suite keeps retention's store-level tests (tests/store/)
def test_retention_deletes_the_oldest_finished_series_until_the_watermark(tmp_path: Path) -> None:
    sources = {name: make_series(tmp_path / "sources" / name) for name in ("oldest", "older", "old", "open")}
    node = NodeProcess(tmp_path / "node")
    node.tmp.mkdir()
    with tmpfs(node.data_dir, 64):
        # Three series whose jobs finish (skipped), oldest first ...
        node.settings = {"jobs": {"workers": 1, "settle_seconds": 0.5}}
        node.start(timeout=90)
        try:
            for name in ("oldest", "older", "old"):
                assert storescu(node.port, tmp_path / "sources" / name).returncode == 0
                assert wait_for_finished_job(node.data_dir, sources[name], timeout=60)[1] == "skipped"
        finally:
            node.stop()
        # ... and one whose job stays queued (no worker).
        node.settings = {"jobs": {"workers": 0, "settle_seconds": 0.5}}
        node.start(timeout=90)
        try:
            assert storescu(node.port, tmp_path / "sources" / "open").returncode == 0
            wait_for_jobs(node.data_dir, 4)
        finally:
            node.stop()

        # The watermark: deleting the oldest series is not enough, deleting the two oldest is.
        size_mb = sum(f.stat().st_size for f in (tmp_path / "sources" / "oldest").iterdir()) / 2**20
        free_mb = shutil.disk_usage(node.data_dir).free / 2**20
        watermark = int(free_mb + 1.5 * size_mb)
        node.settings = {"jobs": {"workers": 0}, "retention": {"min_free_disk_mb": watermark, "interval_seconds": 0.5}}
        node.start(timeout=90)
        try:
            wait_for(lambda: f"retention: series {sources['older']} deleted" in node.log(), 30, "the two oldest series deleted")
            time.sleep(1.5)  # three more sweeps: the watermark is met, nothing else goes
        finally:
            node.stop()
        kept = series_in_index(node.data_dir)
        assert set(kept) == {sources["old"], sources["open"]}
        assert f"retention: series {sources['old']} deleted" not in node.log()
        assert "free disk still below" not in node.log()
        assert shutil.disk_usage(node.data_dir).free / 2**20 >= watermark
        # The index and the disk agree: every indexed instance has its file, every file its row, no folder is left behind.
        assert files_on_disk(node.data_dir) == files_in_index(node.data_dir)
        assert set(kept.values()) == {SLICES}
        gone = (sources["oldest"], sources["older"])
        assert query(node.data_dir, "SELECT count(*) FROM series WHERE series_instance_uid IN (?, ?)", *gone) == [(0,)]
        assert query(node.data_dir, "SELECT count(*) FROM job") == [(2,)]

        # By age: the finished series goes, the one with a queued job stays however old it is.
        node.settings = {"jobs": {"workers": 0}, "retention": {"max_age_days": 1e-6, "interval_seconds": 0.5}}
        node.start(timeout=90)
        try:
            wait_for(lambda: f"retention: series {sources['old']} deleted" in node.log(), 30, "the old series deleted by age")
        finally:
            node.stop()
        assert set(series_in_index(node.data_dir)) == {sources["open"]}
        assert files_on_disk(node.data_dir) == files_in_index(node.data_dir)
        assert query(node.data_dir, "SELECT j.state FROM job j") == [("queued",)]
