"""Real dcmtk peers send real CT series to the node started through its CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pydicom
import pytest

from tests.dcmtk import Storescp, echoscu, storescu
from tests.dicom_files import dataset_bytes
from tests.node.index import jobs, query, wait_for_jobs
from tests.node_process import free_port, shared_series, wait_for_port

P001 = ("covid-ct-md", "P001")
B70F = ("lung-pet-ct-dx", "A0002-B70f")
B40F = ("lung-pet-ct-dx", "A0002-B40f")


def stored_by_uid(data_dir: Path) -> dict[str, tuple[str, str, str]]:
    rows = query(
        data_dir,
        "SELECT i.sop_instance_uid, i.path, s.series_instance_uid, st.study_instance_uid FROM instance i "
        "JOIN series s ON s.id = i.series_fk JOIN study st ON st.id = s.study_fk",
    )
    return {uid: (path, series, study) for uid, path, series, study in rows}


def wire_copies(folder: Path, out: Path, compressed: bool) -> dict[str, Path]:
    """What storescu actually puts on the wire (it re-encodes sequence lengths), captured by dcmtk storescp +B."""
    port = free_port()
    with Storescp(port, out) as scp:
        wait_for_port(port, 10, scp.proc)
        assert storescu(port, folder, compressed=compressed).returncode == 0
    return {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in out.iterdir()}


def assert_series_stored(data_dir: Path, folder: Path, wire: dict[str, Path]) -> None:
    """Every instance indexed under its study and series, its data set byte-identical to what was sent, pixels never recompressed."""
    stored = stored_by_uid(data_dir)
    sources = sorted(folder.glob("*.dcm"))
    assert len(wire) == len(sources)
    for source in sources:
        ds = pydicom.dcmread(source)
        path, series, study = stored[ds.SOPInstanceUID]
        assert (series, study) == (ds.SeriesInstanceUID, ds.StudyInstanceUID)
        assert dataset_bytes(data_dir / path) == dataset_bytes(wire[ds.SOPInstanceUID]), f"{source.name} changed on the way"
        kept = pydicom.dcmread(data_dir / path)
        assert kept.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
        assert kept.PixelData == ds.PixelData


def test_echo_and_real_series_arrive_intact_with_one_job_each(node_factory, tmp_path: Path) -> None:
    node = node_factory().start()
    assert echoscu(node.port).returncode == 0
    p001, b70f = shared_series(*P001), shared_series(*B70F)
    result = storescu(node.port, p001)  # JPEG lossless, sent as it is
    assert result.returncode == 0, result.stderr
    result = storescu(node.port, b70f, compressed=False)
    assert result.returncode == 0, result.stderr
    assert_series_stored(node.data_dir, p001, wire_copies(p001, tmp_path / "wire-p001", compressed=True))
    assert_series_stored(node.data_dir, b70f, wire_copies(b70f, tmp_path / "wire-b70f", compressed=False))
    found = wait_for_jobs(node.data_dir, 2)
    time.sleep(1.5)  # a second settle window: no more jobs may appear
    p001_uid = pydicom.dcmread(next(p001.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    b70f_uid = pydicom.dcmread(next(b70f.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
    assert sorted(jobs(node.data_dir)) == sorted([(p001_uid, "queued", 148), (b70f_uid, "queued", 30)]) == sorted(found)
    listed = json.loads(node.cli("jobs", "list", "--json").stdout)
    assert sorted((j["series_instance_uid"], j["state"], j["instances"]) for j in listed) == sorted(found)
    assert "queued" in node.cli("jobs", "list").stdout
    log = node.log()
    assert "STORESCU@127.0.0.1" in log and f"{p001_uid} (148)" in log and "job" in log


def wait_for_receivers(node, count: int, timeout: float = 60) -> None:
    """The port answers once the node listens; its other receiving processes are up once each has said so."""
    deadline = time.monotonic() + timeout
    while node.log().count("receiving process ready") < count - 1:
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.1)


@pytest.mark.parametrize("processes", [1, 3])
def test_concurrent_associations_and_a_series_split_over_two(processes: int, node_factory, tmp_path: Path) -> None:
    """Also with several receiving processes on one port: the same series sent twice at once (duplicates racing
    between processes), another split over two associations; one job per series, every indexed file present."""
    node = node_factory(settings={"dicom": {"receive_processes": processes}}).start()
    wait_for_receivers(node, processes)
    b70f, b40f = shared_series(*B70F), shared_series(*B40F)
    b40f_files = sorted(b40f.glob("*.dcm"))
    halves = [tmp_path / "half1", tmp_path / "half2"]
    for half, files in zip(halves, (b40f_files[::2], b40f_files[1::2])):
        half.mkdir()
        for f in files:
            (half / f.name).symlink_to(f)
    results: list = []
    senders = [
        threading.Thread(target=lambda p=p: results.append(storescu(node.port, p, compressed=False)))
        for p in (b70f, b70f, halves[0], halves[1])
    ]
    for s in senders:
        s.start()
    for s in senders:
        s.join(120)
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    wait_for_jobs(node.data_dir, 2)
    time.sleep(1.5)
    counts = sorted((state, n) for _, state, n in jobs(node.data_dir))
    assert counts == [("queued", 30), ("queued", 30)], "one job per series, the split series complete in one job"
    stored = stored_by_uid(node.data_dir)
    assert len(stored) == 60 and all((node.data_dir / path).is_file() for path, _, _ in stored.values())
    assert query(node.data_dir, "SELECT sum(failures), count(*) FROM association WHERE state = 'released'") == [(0, 4)]
    if processes > 1:
        receivers = {name for (name,) in query(node.data_dir, "SELECT DISTINCT node FROM association")}
        assert len(receivers) >= 2, f"four associations went to one process of {processes}: {receivers}"
