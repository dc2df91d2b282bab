"""The index stays true when instances move between series and patients share an ID: the real node, storescu, the API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pydicom
from pydicom.uid import generate_uid

from phantoms.chest import make_phantom, write_phantom_series
from tests.dcmtk import storescu
from tests.node.index import query
from tests.node_process import free_port


def series_files(folder: Path, patient_id: str, patient_name: str, issuer: str | None = None, study: str | None = None) -> list[Path]:
    files = write_phantom_series(make_phantom((32, 32, 24), seed=5), folder, patient_id=patient_id, patient_name=patient_name, study_instance_uid=study)
    if issuer is not None:
        for path in files:
            ds = pydicom.dcmread(path)
            ds.IssuerOfPatientID = issuer
            ds.save_as(path)
    return files


def wait_until(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def test_an_instance_moved_to_another_patients_series_updates_both_sides(node_factory, tmp_path: Path) -> None:
    node = node_factory().start()
    first = series_files(tmp_path / "a", "PAT-A", "Alpha^Ann")
    assert storescu(node.port, tmp_path / "a", compressed=False).returncode == 0
    series_a = str(pydicom.dcmread(first[0]).SeriesInstanceUID)
    wait_until(lambda: query(node.data_dir, "SELECT 1 FROM job"), 30, "the first job")

    # The same SOP instance, re-sent under another patient's series (a corrected or mis-filed image).
    moved = pydicom.dcmread(first[3])
    moved.PatientID, moved.PatientName = "PAT-B", "Beta^Bob"
    moved.StudyInstanceUID, moved.SeriesInstanceUID = generate_uid(), generate_uid()
    (tmp_path / "b").mkdir()
    moved.save_as(tmp_path / "b" / "moved.dcm")
    assert storescu(node.port, tmp_path / "b", compressed=False).returncode == 0

    def counts() -> list[tuple]:
        return query(
            node.data_dir,
            "SELECT s.series_instance_uid, s.instance_count, (SELECT count(*) FROM instance i WHERE i.series_fk = s.id) FROM series s ORDER BY s.id",
        )

    assert counts() == [(series_a, 23, 23), (str(moved.SeriesInstanceUID), 1, 1)]
    def jobs_of_a() -> list[tuple] | None:
        rows = query(
            node.data_dir,
            "SELECT j.state, j.instance_count, j.reason FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ? ORDER BY j.id",
            series_a,
        )
        return rows if len(rows) == 2 else None

    jobs_a = wait_until(jobs_of_a, 30, "the series that lost an instance to be queued again")
    assert [(state, n) for state, n, _ in jobs_a] == [("superseded", 24), ("queued", 23)]
    assert "moved to another series" in jobs_a[0][2]
    log = node.log()
    assert f"instance {moved.SOPInstanceUID} moved from series {series_a}" in log and f"to series {moved.SeriesInstanceUID}" in log
    assert not any(Path(p).name == first[3].name for (p,) in query(node.data_dir, "SELECT path FROM instance WHERE series_fk = 1"))


def test_patients_are_told_apart_by_issuer_and_a_name_conflict_shows_in_the_api(node_factory, tmp_path: Path) -> None:
    port = free_port()
    node = node_factory(settings={"http": {"port": port, "host": "127.0.0.1"}}).start()
    series_files(tmp_path / "h1", "12345", "Smith^John", issuer="HOSPITAL-1")
    series_files(tmp_path / "h2", "12345", "Jones^Mary", issuer="HOSPITAL-2")
    series_files(tmp_path / "h1b", "12345", "Smyth^John", issuer="HOSPITAL-1")
    for folder in ("h1", "h2", "h1b"):
        assert storescu(node.port, tmp_path / folder, compressed=False).returncode == 0
    assert sorted(query(node.data_dir, "SELECT patient_id, issuer FROM patient")) == [("12345", "HOSPITAL-1"), ("12345", "HOSPITAL-2")]

    studies = httpx.get(f"http://127.0.0.1:{port}/api/studies", timeout=10).json()
    seen = sorted((s["issuer_of_patient_id"], s["patient_name"], s["patient_name_conflict"]) for s in studies)
    assert seen == [("HOSPITAL-1", "Smith^John", True), ("HOSPITAL-1", "Smyth^John", True), ("HOSPITAL-2", "Jones^Mary", False)]
    series = httpx.get(f"http://127.0.0.1:{port}/api/series", timeout=10).json()
    assert sorted(s["patient_name"] for s in series) == ["Jones^Mary", "Smith^John", "Smyth^John"]
    assert "came as 'Smyth^John', an earlier study as 'Smith^John'" in node.log()
