"""What the Query/Retrieve SCP finds in the index: received instances and done jobs' results, on SQLite and
PostgreSQL, from synthetic index rows (no files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.catalogue import Query, TooManyMatches, find, instances
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.models import Instance, Job, ResultInstance, Series
from tests.qrscp.synthetic_index import SEG, Shape, fill, study_date, study_time, study_uid

SHAPE = Shape(studies=6, series_per_study=2, instances_per_series=3)
STUDY_COUNTS = {"ModalitiesInStudy": "", "NumberOfStudyRelatedSeries": "", "NumberOfStudyRelatedInstances": "", "SOPClassesInStudy": ""}


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(database_url)
    engine = make_engine(database_url)
    made = make_sessionmaker(engine)
    with made.begin() as session:
        fill(session, SHAPE)
    yield made
    engine.dispose()


def _find(sessions: sessionmaker[Session], level: str, limit: int = 1000, **keys: object) -> list[dict]:
    with sessions() as session:
        return find(session, Query.of(level, keys), limit)  # type: ignore[arg-type]


def test_a_study_counts_its_received_series_and_its_results(sessions: sessionmaker[Session]) -> None:
    (study,) = _find(sessions, "STUDY", StudyInstanceUID=study_uid(0), **STUDY_COUNTS)
    assert study["ModalitiesInStudy"] == ["CT", "SEG"]
    assert (study["NumberOfStudyRelatedSeries"], study["NumberOfStudyRelatedInstances"]) == (3, 7)
    assert SEG in study["SOPClassesInStudy"]


def test_a_superseded_jobs_results_are_no_longer_found(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == 1).values(state="superseded"))
    (study,) = _find(sessions, "STUDY", StudyInstanceUID=study_uid(0), **STUDY_COUNTS)
    assert (study["ModalitiesInStudy"], study["NumberOfStudyRelatedInstances"]) == (["CT"], 6)
    assert not _find(sessions, "SERIES", StudyInstanceUID=study_uid(0), Modality="SEG")


def test_a_result_the_pacs_sent_back_counts_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        result = session.scalars(select(ResultInstance).where(ResultInstance.job_fk == 1)).one()
        session.execute(insert(Series).values(id=1000, series_instance_uid=result.series_instance_uid, study_fk=1, modality="SEG", instance_count=1))
        session.execute(insert(Instance).values(sop_instance_uid=result.sop_instance_uid, sop_class_uid=SEG, series_fk=1000, transfer_syntax_uid="1.2.840.10008.1.2.1",
                                                path="incoming/seg.dcm", size=1))
    (study,) = _find(sessions, "STUDY", StudyInstanceUID=study_uid(0), **STUDY_COUNTS)
    assert study["NumberOfStudyRelatedInstances"] == 7
    assert len(_find(sessions, "IMAGE", StudyInstanceUID=study_uid(0), Modality="SEG")) == 1
    (series,) = _find(sessions, "SERIES", StudyInstanceUID=study_uid(0), Modality="SEG", NumberOfSeriesRelatedInstances="")
    assert series["NumberOfSeriesRelatedInstances"] == 1


def test_a_date_range_finds_the_studies_of_those_dates(sessions: sessionmaker[Session]) -> None:
    expected = {study_uid(s) for s in range(SHAPE.studies) if "20200101" <= study_date(s) <= "20211231"}
    assert expected and len(expected) < SHAPE.studies
    found = _find(sessions, "STUDY", StudyDate="20200101-20211231", StudyInstanceUID="")
    assert {row["StudyInstanceUID"] for row in found} == expected


def test_a_time_range_finds_the_studies_of_those_times(sessions: sessionmaker[Session]) -> None:
    expected = {study_uid(s) for s in range(SHAPE.studies) if "0800" <= study_time(s)[:4] <= "1000"}
    assert expected and len(expected) < SHAPE.studies
    found = _find(sessions, "STUDY", StudyTime="0800-1000", StudyInstanceUID="")
    assert {row["StudyInstanceUID"] for row in found} == expected


def test_patient_names_match_case_insensitively_and_ids_exactly(sessions: sessionmaker[Session]) -> None:
    assert len(_find(sessions, "PATIENT", PatientName="patient^number0000?")) == 3  # 6 studies, 2 per patient
    assert len(_find(sessions, "PATIENT", PatientID="pid0000?")) == 0
    assert len(_find(sessions, "PATIENT", PatientID="PID0000?")) == 3
    assert len(_find(sessions, "PATIENT", PatientID="PID_000*")) == 0  # `_` is no SQL wildcard here


def test_more_matches_than_the_limit_raise(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(TooManyMatches, match="more than 5 matches"):
        _find(sessions, "STUDY", limit=5, StudyInstanceUID="")
    assert len(_find(sessions, "STUDY", limit=6, StudyInstanceUID="")) == 6


def test_a_retrieve_gets_every_file_of_the_study_results_included(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions() as session:
        files = instances(session, Query.of("STUDY", {"StudyInstanceUID": study_uid(1)}), tmp_path, 1000)
    assert len(files) == 7
    assert {item.path.relative_to(tmp_path).parts[0] for item in files} == {"synthetic", "results"}


def test_results_go_with_their_job(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(delete(Job).where(Job.id == 2))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(ResultInstance)) == SHAPE.studies - 1
