"""What the Query/Retrieve SCP finds: received instances and the results of done jobs, from the index alone.

The index holds every attribute C-FIND matches on and returns (patient,
study, series, instance rows; results in `result_instance`), so no file is
opened to answer a query; only a retrieve reads the files it sends. Results
count once even when a PACS sent them back to the node (by SOP Instance UID).

Any key of the query's level or a level above it is matched (Orthanc does the
same; the standard's hierarchical search needs only the unique keys above).
Keys of attributes the index does not hold are returned empty and not matched
on (`UNINDEXED`). Counts and lists over a level's children
(NumberOfStudyRelatedInstances, ModalitiesInStudy, ...) are computed for the
matches only, in one aggregate query per level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom.datadict import dictionary_VR
from sqlalchemy import ColumnElement, Select, distinct, exists, func, select, union_all
from sqlalchemy.orm import Session

from dicom_node.store.matching import KeyMatch, parse_key
from dicom_node.store.models import Instance, Job, Patient, ResultInstance, Series, Study

Level = Literal["PATIENT", "STUDY", "SERIES", "IMAGE"]
LEVELS: tuple[Level, ...] = ("PATIENT", "STUDY", "SERIES", "IMAGE")


def _catalogue() -> Any:
    """Every instance the node can send, received or written by a done job, one row each (a result sent back: two)."""
    received = select(
        Series.study_fk.label("study_fk"),
        Series.series_instance_uid.label("series_uid"),
        Series.modality.label("modality"),
        Series.series_number.label("series_number"),
        Series.description.label("series_description"),
        Instance.sop_instance_uid.label("sop_uid"),
        Instance.sop_class_uid.label("sop_class"),
        Instance.instance_number.label("instance_number"),
        Instance.transfer_syntax_uid.label("syntax"),
        Instance.path.label("path"),
    ).join(Series, Instance.series_fk == Series.id)
    results = (
        select(
            ResultInstance.study_fk,
            ResultInstance.series_instance_uid,
            ResultInstance.modality,
            ResultInstance.series_number,
            ResultInstance.series_description,
            ResultInstance.sop_instance_uid,
            ResultInstance.sop_class_uid,
            ResultInstance.instance_number,
            ResultInstance.transfer_syntax_uid,
            ResultInstance.path,
        )
        .join(Job, ResultInstance.job_fk == Job.id)
        .where(Job.state == "done")
    )
    return union_all(received, results).subquery("catalogue")


CATALOGUE = _catalogue()


def _attributes(level: Level) -> dict[str, ColumnElement[Any]]:
    """The attributes a query at `level` can match and return (its level's and those above), and the column of each."""
    patient_name = Patient.patient_name if level == "PATIENT" else Study.patient_name  # each study's as received
    table: list[tuple[str, Level, ColumnElement[Any]]] = [
        ("PatientID", "PATIENT", Patient.patient_id),
        ("IssuerOfPatientID", "PATIENT", Patient.issuer),
        ("PatientName", "PATIENT", patient_name),
        ("PatientBirthDate", "PATIENT", Patient.birth_date),
        ("PatientSex", "PATIENT", Patient.sex),
        ("StudyInstanceUID", "STUDY", Study.study_instance_uid),
        ("StudyDate", "STUDY", Study.study_date),
        ("StudyTime", "STUDY", Study.study_time),
        ("StudyID", "STUDY", Study.study_id),
        ("AccessionNumber", "STUDY", Study.accession_number),
        ("StudyDescription", "STUDY", Study.description),
        ("SeriesInstanceUID", "SERIES", CATALOGUE.c.series_uid),
        ("Modality", "SERIES", CATALOGUE.c.modality),
        ("SeriesNumber", "SERIES", CATALOGUE.c.series_number),
        ("SeriesDescription", "SERIES", CATALOGUE.c.series_description),
        ("SOPInstanceUID", "IMAGE", CATALOGUE.c.sop_uid),
        ("SOPClassUID", "IMAGE", CATALOGUE.c.sop_class),
        ("InstanceNumber", "IMAGE", CATALOGUE.c.instance_number),
    ]
    depth = LEVELS.index(level)
    return {keyword: column for keyword, at, column in table if LEVELS.index(at) <= depth}


# Attributes of the children of a match, computed per match (returned; ModalitiesInStudy is also matched on)
COMPUTED: dict[Level, tuple[str, ...]] = {
    "PATIENT": ("NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries", "NumberOfPatientRelatedInstances"),
    "STUDY": ("ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "SERIES": ("NumberOfSeriesRelatedInstances",),
    "IMAGE": (),
}
# Keys the index does not hold: returned empty, not matched on
UNINDEXED = frozenset({"ReferringPhysicianName", "SeriesDate", "SeriesTime", "ContentDate", "ContentTime"})


class TooManyMatches(Exception):
    """The query matches more than the limit allows; the message says so and what to do."""


@dataclass(frozen=True)
class Query:
    """A C-FIND identifier read: the level and, per key, what it asks for."""

    level: Level
    keys: Mapping[str, KeyMatch]

    @classmethod
    def of(cls, level: Level, values: Mapping[str, object]) -> Query:
        """From the identifier's keys (keyword -> pydicom value; sequences and unknown keywords are the caller's)."""
        return cls(level, {keyword: parse_key(value, dictionary_VR(keyword)) for keyword, value in values.items()})

    def conditions(self) -> dict[str, KeyMatch]:
        """The keys that restrict the matches (not universal), of attributes the index holds at this level."""
        held = _attributes(self.level)
        by_children = {"ModalitiesInStudy"} if self.level == "STUDY" else set()
        return {keyword: match for keyword, match in self.keys.items() if not match.universal and (keyword in held or keyword in by_children)}


@dataclass(frozen=True)
class StoredInstance:
    """A file a retrieve sends."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def _joined(level: Level, columns: list[ColumnElement[Any]]) -> Select[Any]:
    if level == "PATIENT":
        return select(Patient.id.label("_id"), *columns)
    if level == "STUDY":
        return select(Study.id.label("_id"), *columns).join(Patient, Study.patient_fk == Patient.id)
    key = CATALOGUE.c.series_uid if level == "SERIES" else CATALOGUE.c.sop_uid
    return (
        select(key.label("_id"), *columns)
        .select_from(CATALOGUE)
        .join(Study, CATALOGUE.c.study_fk == Study.id)
        .join(Patient, Study.patient_fk == Patient.id)
    )


def _statement(query: Query, extra: list[ColumnElement[Any]] = []) -> Select[Any]:  # noqa: B006 - read only
    held = _attributes(query.level)
    columns = [column.label(keyword) for keyword, column in held.items()]
    statement = _joined(query.level, [*columns, *extra])
    for keyword, match in query.conditions().items():
        if keyword == "ModalitiesInStudy":
            statement = statement.where(Study.id.in_(select(CATALOGUE.c.study_fk).where(match.clause(CATALOGUE.c.modality))))  # type: ignore[arg-type]
            continue
        clause = match.clause(held[keyword])
        if clause is not None:
            statement = statement.where(clause)
    if query.level == "SERIES":
        statement = statement.group_by(*held.values())
    return statement


def _accepted(query: Query, row: Mapping[str, Any]) -> bool:
    return all(match.accepts(row[keyword]) for keyword, match in query.conditions().items() if keyword != "ModalitiesInStudy")


def find(session: Session, query: Query, limit: int) -> list[dict[str, Any]]:
    """The matches, one mapping of keyword to value each (the level's attributes and those above, and the computed
    ones the query asks for); TooManyMatches past `limit`."""
    extra = [func.count(distinct(CATALOGUE.c.sop_uid)).label("NumberOfSeriesRelatedInstances")] if query.level == "SERIES" else []
    matches: dict[object, dict[str, Any]] = {}
    for row in session.execute(_statement(query, extra)).mappings():
        if row["_id"] in matches or not _accepted(query, row):
            continue  # IMAGE: a result also received back
        if len(matches) == limit:
            raise TooManyMatches(f"more than {limit} matches: narrow the query")
        matches[row["_id"]] = dict(row)
    wanted = [keyword for keyword in COMPUTED[query.level] if keyword in query.keys and keyword != "NumberOfSeriesRelatedInstances"]
    if wanted and matches:
        _add_children(session, query.level, matches, wanted)
    for values in matches.values():
        del values["_id"]
    return list(matches.values())


def _add_children(session: Session, level: Level, matches: dict[object, dict[str, Any]], wanted: list[str]) -> None:
    """The computed attributes of PATIENT or STUDY matches (keyed by patient or study id), from the series rows
    (their instance counts) and the results' rows, not from every instance row: a few rows per study."""
    owner = Study.patient_fk if level == "PATIENT" else Study.id
    owners = list(matches)
    children = {owner_id: _Children() for owner_id in owners}
    received = select(owner, Study.id, Series.series_instance_uid, Series.modality, Series.instance_count).join(Study, Series.study_fk == Study.id)
    for owner_id, study_id, series_uid, modality, count in session.execute(received.where(owner.in_(owners))):
        children[owner_id].add(study_id, series_uid, modality, count)
    received_back = exists().where(Instance.sop_instance_uid == ResultInstance.sop_instance_uid)
    results = (
        select(owner, Study.id, ResultInstance.series_instance_uid, ResultInstance.modality, ResultInstance.sop_class_uid)
        .join(Study, ResultInstance.study_fk == Study.id)
        .join(Job, ResultInstance.job_fk == Job.id)
        .where(Job.state == "done", owner.in_(owners), ~received_back)
    )
    for owner_id, study_id, series_uid, modality, sop_class in session.execute(results):
        children[owner_id].add(study_id, series_uid, modality, 1, sop_class)
    if "SOPClassesInStudy" in wanted:
        classes = select(Series.study_fk, Instance.sop_class_uid).join(Series, Instance.series_fk == Series.id).where(Series.study_fk.in_(owners)).distinct()
        for study_id, sop_class in session.execute(classes):
            children[study_id].sop_classes.add(sop_class)
    for owner_id, values in matches.items():
        computed = children[owner_id].attributes()
        values.update({keyword: computed[keyword] for keyword in wanted})


@dataclass
class _Children:
    """What a patient or study holds, added up from its series and results."""

    studies: set[int] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    modalities: set[str] = field(default_factory=set)
    sop_classes: set[str] = field(default_factory=set)
    instances: int = 0

    def add(self, study_id: int, series_uid: str, modality: str, instances: int, sop_class: str = "") -> None:
        self.studies.add(study_id)
        self.series.add(series_uid)
        self.modalities.add(modality)
        self.sop_classes.add(sop_class)
        self.instances += instances

    def attributes(self) -> dict[str, Any]:
        studies, series = len(self.studies), len(self.series)
        return {
            "NumberOfPatientRelatedStudies": studies,
            "NumberOfPatientRelatedSeries": series,
            "NumberOfPatientRelatedInstances": self.instances,
            "NumberOfStudyRelatedSeries": series,
            "NumberOfStudyRelatedInstances": self.instances,
            "ModalitiesInStudy": sorted(self.modalities - {""}),
            "SOPClassesInStudy": sorted(self.sop_classes - {""}),
        }


def instances(session: Session, query: Query, data_dir: Path, limit: int) -> list[StoredInstance]:
    """The files of every instance the query's keys match, whatever its level (a retrieve's identifier)."""
    image = Query("IMAGE", {keyword: match for keyword, match in query.keys.items() if keyword != "ModalitiesInStudy"})
    extra = [CATALOGUE.c.syntax.label("_syntax"), CATALOGUE.c.path.label("_path")]
    found: dict[str, StoredInstance] = {}
    for row in session.execute(_statement(image, extra)).mappings():
        if row["_id"] in found or not _accepted(image, row):
            continue
        if len(found) == limit:
            raise TooManyMatches(f"more than {limit} instances: retrieve less at once")
        found[row["_id"]] = StoredInstance(data_dir / row["_path"], row["SOPClassUID"], row["SOPInstanceUID"], row["_syntax"])
    return list(found.values())
