"""Fixtures for the export tests: peers that always stop, and outbox rows seeded without the pipeline."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import ComprehensiveSRStorage, SegmentationStorage
from sqlalchemy import select

from dicom_node.config import ExportSettings
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.models import Export, Job, Patient, Series, Study
from dicom_node.store.outbox import Outbox, ResultObject
from dicom_node.store.rows import export_row
from tests.certificates import self_signed
from tests.export.peers import P001, Orthanc, StrictStoreSCP, TlsStoreSCP

if not P001.is_dir():
    pytest.skip(f"test data {P001} missing", allow_module_level=True)


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., Orthanc]]:
    started: list[Orthanc] = []

    def make(start: bool = True) -> Orthanc:
        pacs = Orthanc(tmp_path / f"orthanc{len(started)}")
        started.append(pacs)
        if start:
            pacs.start()
        return pacs

    yield make
    for pacs in started:
        pacs.stop(signal.SIGKILL)


@pytest.fixture
def orthanc(orthanc_factory: Callable[..., Orthanc]) -> Orthanc:
    return orthanc_factory()


@pytest.fixture
def strict_scp(tmp_path: Path) -> Iterator[StrictStoreSCP]:
    scp = StrictStoreSCP(tmp_path / "strict")
    scp.start()
    yield scp
    scp.stop()


def make_object(path: Path, sop_class_uid: str, study_uid: str, series_uid: str, modality: str) -> Path:
    """A small, valid Part 10 object of the given class: enough for transport tests, no pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = "EXPORT-TEST"
    ds.PatientName = "Export^Test"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def result_like_objects(folder: Path, study_uid: str | None = None) -> list[Path]:
    """One SEG-class and one SR-class object in a new series of a study, as the output writer would produce."""
    study_uid = study_uid or generate_uid()
    return [
        make_object(folder / "seg.dcm", SegmentationStorage, study_uid, generate_uid(), "SEG"),
        make_object(folder / "sr.dcm", ComprehensiveSRStorage, study_uid, generate_uid(), "SR"),
    ]


def seed_exports(data_dir: Path, files: list[Path], destinations: list[str]) -> int:
    """A finished job whose results (copied into the data dir) are queued for `destinations`; returns the job id."""
    url = f"sqlite:///{(data_dir / 'index.sqlite3').resolve()}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    results = data_dir / "results" / "seeded"
    results.mkdir(parents=True, exist_ok=True)
    with sessions.begin() as session:
        patient = Patient(patient_id=f"P-{generate_uid()[-8:]}")
        study = Study(study_instance_uid=generate_uid(), patient=patient)
        series = Series(series_instance_uid=generate_uid(), study=study)
        job = Job(series=series, pipeline="covid19_ct", state="done", steps={}, result={})
        session.add(job)
        session.flush()
        job_id = job.id
    objects = [ResultObject.from_file(Path(shutil.copy2(file, results / file.name)), data_dir) for file in files]
    Outbox(sessions, ExportSettings(), data_dir).enqueue(job_id, objects, destinations)
    engine.dispose()
    return job_id


def export_rows(data_dir: Path) -> list[dict[str, Any]]:
    """The outbox as the CLI and the API show it, newest first."""
    engine = make_engine(f"sqlite:///{(data_dir / 'index.sqlite3').resolve()}")
    try:
        with make_sessionmaker(engine)() as session:
            return [export_row(row) for row in session.scalars(select(Export).order_by(Export.id.desc()))]
    finally:
        engine.dispose()


@pytest.fixture
def tls_pair(tmp_path: Path) -> Iterator[tuple[TlsStoreSCP, Path, Path]]:
    """A TLS storescp and the client certificate and key it trusts."""
    client_cert, client_key = self_signed(tmp_path, "client", "dicom-node")
    scp = TlsStoreSCP(tmp_path / "tls", client_cert)
    yield scp, client_cert, client_key
    scp.stop()
