"""Results of jobs done before the results were indexed (migration 0012) are indexed when the node starts."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import delete, update

from dicom_node.pipelines.registry import stored_dicom_files
from dicom_node.store.catalogue import Query, find
from dicom_node.store.models import Job, ResultInstance
from dicom_node.store.result_index import index_missing_results
from tests.qrscp.synthetic_index import SEG, Shape, fill, study_uid


def _write_seg(path: Path, study: str) -> str:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SEG, f"{study}.77.1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, f"{study}.77"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = "SEG", 77, 1, "Lungs"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    path.parent.mkdir(parents=True)
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SeriesInstanceUID)


def test_a_done_jobs_results_are_indexed_once_at_start(tmp_path: Path, sqlite_sessions) -> None:
    sessions = sqlite_sessions
    with sessions.begin() as session:
        fill(session, Shape(studies=2, series_per_study=1, instances_per_series=2))
        session.execute(delete(ResultInstance))  # as after the upgrade: done jobs, nothing indexed of their results
        session.execute(update(Job).where(Job.id == 1).values(result={"files": {"seg": "results/1/seg.dcm"}}))
    series = _write_seg(tmp_path / "results" / "1" / "seg.dcm", study_uid(0))
    assert index_missing_results(sessions, tmp_path, stored_dicom_files) == 1  # job 2's result names no file: nothing to index
    assert index_missing_results(sessions, tmp_path, stored_dicom_files) == 0
    with sessions() as session:
        (found,) = find(session, Query.of("SERIES", {"StudyInstanceUID": study_uid(0), "Modality": "SEG", "SeriesInstanceUID": ""}), 10)
    assert found["SeriesInstanceUID"] == series
