"""The outbox side of de-identified destinations, in process: the source series queued for destinations with
include_source, and an object the profile must not send failed with the reason, before any association."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import ComprehensiveSRStorage, CTImageStorage, KeyObjectSelectionDocumentStorage, SecondaryCaptureImageStorage, generate_uid
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import load_config
from dicom_node.export import Exporter
from dicom_node.net.address import DicomAddress
from dicom_node.net.scu import Scu
from dicom_node.store.db import make_engine, make_sessionmaker
from dicom_node.store.models import Export, Instance, Job, Patient, Series, Study
from dicom_node.store.outbox import Outbox, ResultObject
from tests.export.conftest import export_rows, make_object, seed_exports

DESTINATIONS = [
    {"name": "PACS", "ae_title": "PACS", "host": "127.0.0.1", "port": 104},
    {"name": "RESEARCH", "ae_title": "RESEARCH", "host": "127.0.0.1", "port": 105, "include_source": True,
     "deidentification": {"enabled": True}},
]  # fmt: skip


def indexed_series(tmp_path: Path, sessions: sessionmaker[Session], study_uid: str) -> tuple[int, int]:
    """A series of two stored CT instances and a done job for it; returns (job id, series id)."""
    with sessions.begin() as session:
        series = Series(series_instance_uid=generate_uid(), study=Study(study_instance_uid=study_uid, patient=Patient(patient_id="P1")))
        for number in (1, 2):
            path = make_object(tmp_path / "instances" / f"{number}.dcm", CTImageStorage, study_uid, series.series_instance_uid, "CT")
            uid = pydicom.dcmread(path).SOPInstanceUID
            session.add(Instance(sop_instance_uid=uid, sop_class_uid=CTImageStorage, series=series, transfer_syntax_uid="1.2.840.10008.1.2.1",
                                 path=f"instances/{number}.dcm", size=path.stat().st_size))  # fmt: skip
        job = Job(series=series, pipeline="covid19_ct", state="done", steps={}, result={})
        session.add(job)
        session.flush()
        return job.id, series.id


def test_the_source_series_is_queued_only_for_destinations_that_include_it(tmp_path: Path, sqlite_sessions) -> None:
    sessions = sqlite_sessions
    study_uid = generate_uid()
    result = make_object(tmp_path / "results" / "sr.dcm", ComprehensiveSRStorage, study_uid, generate_uid(), "SR")
    job_id, series_id = indexed_series(tmp_path, sessions, study_uid)
    outbox = Outbox(sessions, load_config(None, {}, environ={}).export, tmp_path)
    objects = [ResultObject.from_file(result, tmp_path)]
    for expected in (4, 0):  # again: nothing twice
        with sessions.begin() as session:
            assert outbox.enqueue_job_in(session, job_id, series_id, objects, ["PACS", "RESEARCH"], {"RESEARCH"}) == expected
    rows = export_rows(tmp_path)
    assert sorted((row["destination"], row["sop_class_uid"]) for row in rows) == [
        ("PACS", ComprehensiveSRStorage), ("RESEARCH", CTImageStorage), ("RESEARCH", CTImageStorage), ("RESEARCH", ComprehensiveSRStorage)
    ]


def test_a_newer_result_supersedes_only_results_never_the_source_sent_along_nor_a_rejection_note(
    tmp_path: Path, sqlite_sessions
) -> None:
    """The next job of the series runs after include_source was turned off: its own destinations send no source."""
    sessions = sqlite_sessions
    study_uid = generate_uid()
    first_job, series_id = indexed_series(tmp_path, sessions, study_uid)
    old_result = make_object(tmp_path / "results" / "old.dcm", ComprehensiveSRStorage, study_uid, generate_uid(), "SR")
    old_note = make_object(tmp_path / "results" / "note.dcm", KeyObjectSelectionDocumentStorage, study_uid, generate_uid(), "KO")
    outbox = Outbox(sessions, load_config(None, {}, environ={}).export, tmp_path)
    with sessions.begin() as session:
        earlier = [ResultObject.from_file(path, tmp_path) for path in (old_result, old_note)]
        outbox.enqueue_job_in(session, first_job, series_id, earlier, ["RESEARCH"], {"RESEARCH"})
        session.execute(update(Export).values(state="sent"))
        second = Job(series_fk=series_id, pipeline="covid19_ct", state="running", steps={}, result={})
        session.add(second)
        session.flush()
        superseded = outbox.supersede_in(session, second.id, series_id, "covid19_ct", {generate_uid()})
    assert [old.sop_instance_uid for old in superseded] == [pydicom.dcmread(old_result).SOPInstanceUID]
    states = sorted((row["sop_class_uid"], row["state"]) for row in export_rows(tmp_path))
    assert states == sorted(
        [(KeyObjectSelectionDocumentStorage, "sent"), (CTImageStorage, "sent"), (CTImageStorage, "sent"), (ComprehensiveSRStorage, "superseded")]
    )


def test_a_capture_that_may_show_identity_fails_with_the_reason_and_nothing_is_sent(tmp_path: Path) -> None:
    capture = make_object(tmp_path / "sc.dcm", SecondaryCaptureImageStorage, generate_uid(), generate_uid(), "OT")
    ds = pydicom.dcmread(capture)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = 1, 1, 8, 1
    ds.add_new("PixelData", "OB", b"\x00\x00")  # no Burned In Annotation: unknown
    ds.save_as(capture, enforce_file_format=True)
    seed_exports(tmp_path, [capture], ["RESEARCH"])
    config = load_config(None, {"node": {"data_dir": str(tmp_path)}, "destinations": DESTINATIONS}, environ={})
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    exporter = Exporter(config, make_sessionmaker(engine), tmp_path, "test/owner")
    nowhere = DicomAddress("RESEARCH", "127.0.0.1", 1)  # nothing listens: no association may be tried
    assert exporter.send_due("RESEARCH", nowhere, Scu(config.export)) is True
    (row,) = export_rows(tmp_path)
    assert row["state"] == "failed" and "not sent to de-identified destination RESEARCH" in row["last_error"]
    assert "pixels_cleaned" in row["last_error"]
    assert not list(tmp_path.glob("deidentified/*.dcm"))
    engine.dispose()
