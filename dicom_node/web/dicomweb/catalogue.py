"""What DICOMweb serves: the instances the node received (the index) and the results of its done jobs.

Received instances are found through the index; the SEG, SR and key images of
each *done* job (superseded and failed jobs' files are not results any more)
through the job's result files, whose identifiers are read from their headers.
Attributes beyond the index's columns come from the files' headers (read
without pixel data, cached by path and modification time), so every attribute a
stored file has can be queried and returned, and a study's attributes are those
of its instances as received.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.pipelines.registry import read_manifest
from dicom_node.store.models import Instance, Job, Series, Study


@dataclass(frozen=True)
class Entry:
    """One instance DICOMweb can serve, with its file (absolute path)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None
    path: Path

    def header(self) -> Dataset:
        return read_header(self.path)


@dataclass(frozen=True)
class Scope:
    """Which instances a request is about: None matches any (a list: any of these UIDs)."""

    study: list[str] | None = None
    series: list[str] | None = None
    sop: list[str] | None = None

    def admits(self, entry: Entry) -> bool:
        return all(
            wanted is None or value in wanted
            for wanted, value in ((self.study, entry.study_uid), (self.series, entry.series_uid), (self.sop, entry.sop_uid))
        )


def read_header(path: Path) -> Dataset:
    """The file's data set without its pixel data (cached while the file is unchanged)."""
    return _read_header(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _read_header(path: str, _mtime_ns: int) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def entries(session: Session, data_dir: Path, scope: Scope) -> list[Entry]:
    """Every instance in `scope` once (a result the node also received back counts once), in instance number order."""
    unique = {entry.sop_uid: entry for entry in [*results(session, data_dir, scope), *received(session, data_dir, scope)]}
    return sorted(
        unique.values(),
        key=lambda e: (e.study_uid, e.series_uid, e.instance_number if e.instance_number is not None else 1 << 31, e.sop_uid),
    )


def received(session: Session, data_dir: Path, scope: Scope) -> list[Entry]:
    query = (
        select(
            Study.study_instance_uid,
            Series.series_instance_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.instance_number,
            Instance.path,
        )
        .join(Series, Instance.series_fk == Series.id)
        .join(Study, Series.study_fk == Study.id)
    )
    for column, wanted in (
        (Study.study_instance_uid, scope.study),
        (Series.series_instance_uid, scope.series),
        (Instance.sop_instance_uid, scope.sop),
    ):
        if wanted is not None:
            query = query.where(column.in_(wanted))
    return [Entry(study, series, sop, sop_class, number, data_dir / path) for study, series, sop, sop_class, number, path in session.execute(query)]


def result_paths(job: Job, data_dir: Path) -> list[Path]:
    """The DICOM files a done job wrote (SEG, SR, summary page, key images) that are still there, inside the data dir."""
    root = data_dir.resolve()
    paths = []
    manifest = read_manifest(job.pipeline, job.result)
    for name in manifest.dicom_files() if manifest else []:
        path = (root / name).resolve()
        if path.is_relative_to(root) and path.is_file():
            paths.append(path)
    return paths


def results(session: Session, data_dir: Path, scope: Scope) -> Iterable[Entry]:
    query = select(Job).join(Series, Job.series_fk == Series.id).join(Study, Series.study_fk == Study.id).where(Job.state == "done")
    if scope.study is not None:
        query = query.where(Study.study_instance_uid.in_(scope.study))
    for job in session.scalars(query):
        for path in result_paths(job, data_dir):
            header = read_header(path)
            number = header.get("InstanceNumber")
            entry = Entry(
                str(header.StudyInstanceUID),
                str(header.SeriesInstanceUID),
                str(header.SOPInstanceUID),
                str(header.SOPClassUID),
                int(number) if number not in (None, "") else None,
                path,
            )
            if scope.admits(entry):
                yield entry
