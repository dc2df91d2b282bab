"""The results of a job in the index (`result_instance`), so that the Query/Retrieve SCP finds them as it finds
received instances: from the index, without opening their files.

Written in the transaction that marks the job done (`Worker._publish`): a result
is findable exactly when it is a result. Jobs done before the table existed (migration 0012) are indexed
when the node starts (`index_missing_results`). A superseded job's rows stay, but only a
done job's rows are found (`store/catalogue.py`); they go with the job and the
study (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.models import Job, ResultInstance, Series

_TAGS = ["SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription", "InstanceNumber"]


def _number(value: object) -> int | None:
    try:
        return None if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class IndexedResult:
    """What C-FIND matches and a retrieve needs of one result file (path relative to the data dir)."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    instance_number: int | None
    transfer_syntax_uid: str

    @classmethod
    def from_file(cls, path: Path, data_dir: Path) -> IndexedResult:
        header = dcmread(data_dir / path, stop_before_pixels=True, specific_tags=_TAGS)
        return cls(
            str(path),
            str(header.SOPInstanceUID),
            str(header.SOPClassUID),
            str(header.SeriesInstanceUID),
            str(header.get("Modality", "") or "")[:16],
            _number(header.get("SeriesNumber")),
            str(header.get("SeriesDescription", "") or "")[:64],
            _number(header.get("InstanceNumber")),
            str(header.file_meta.TransferSyntaxUID),
        )


def record_results_in(session: Session, job_id: int, series_id: int, results: list[IndexedResult]) -> None:
    """Index a job's results in the study of its series (in the caller's transaction)."""
    if not results:
        return
    study_fk = session.scalar(select(Series.study_fk).where(Series.id == series_id))
    session.execute(insert(ResultInstance), [{"job_fk": job_id, "study_fk": study_fk, **asdict(result)} for result in results])


DicomFilesOf = Callable[[str, Mapping[str, Any]], list[str]]
"""A done job's DICOM result files (relative to the data dir) from its pipeline's name and stored result: the
pipeline's manifest knows them (`pipelines.registry.read_manifest`); the store knows no pipeline."""


def index_missing_results(sessions: sessionmaker[Session], data_dir: Path, dicom_files_of: DicomFilesOf) -> int:
    """Index the results of done jobs that have none indexed (done before migration 0012); how many jobs it indexed.
    Another process doing the same at once wins (unique per job and instance): its rows are the same."""
    indexed = 0
    with sessions() as session:
        missing = session.execute(
            select(Job.id, Job.series_fk, Job.pipeline, Job.result).where(Job.state == "done", ~exists().where(ResultInstance.job_fk == Job.id))
        ).all()
    for job_id, series_id, pipeline, result in missing:
        names = [name for name in dicom_files_of(pipeline, result or {}) if (data_dir / name).is_file()]
        if not names:
            continue
        try:
            with sessions.begin() as session:
                record_results_in(session, job_id, series_id, [IndexedResult.from_file(Path(name), data_dir) for name in names])
            indexed += 1
        except IntegrityError:
            continue
    return indexed
