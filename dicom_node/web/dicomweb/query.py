"""QIDO-RS matching (PS3.18 8.3.4, PS3.4 C.2.2.2): query parameters, attribute matching, the attributes returned.

Pure functions over pydicom data sets: the routes in qido.py feed them the
catalogue's instances grouped by level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from dicom_node.web.dicomweb.catalogue import Entry

Level = Literal["study", "series", "instance"]

# The attributes each level returns by default (PS3.18 Table 6.7.1-2/2a/2b), read from the level's first instance.
STUDY_KEYS = (
    "StudyDate", "StudyTime", "AccessionNumber", "InstanceAvailability", "ReferringPhysicianName", "TimezoneOffsetFromUTC",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription",
)
SERIES_KEYS = ("Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime")
INSTANCE_KEYS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames")
LEVEL_KEYS: dict[Level, tuple[str, ...]] = {
    "study": STUDY_KEYS,
    "series": STUDY_KEYS + SERIES_KEYS,
    "instance": STUDY_KEYS + SERIES_KEYS + INSTANCE_KEYS,
}
CONTROL_PARAMETERS = {"limit", "offset", "fuzzymatching", "includefield"}
MAX_LIMIT = 1000


class QueryError(ValueError):
    """A query parameter the node cannot honour; the message says which (400)."""


@dataclass
class Query:
    filters: dict[int, str] = field(default_factory=dict)
    include: set[int] = field(default_factory=set)
    include_all: bool = False
    limit: int = MAX_LIMIT
    offset: int = 0
    fuzzy: bool = False


def attribute_tag(name: str) -> int:
    """A query key (keyword such as PatientID, or tag as 8 hex digits) as a tag; QueryError if it names none."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return int(Tag(int(name, 16)))
    tag = tag_for_keyword(name)
    if tag is None:
        raise QueryError(f"unknown attribute {name!r} (a DICOM keyword or 8 hex digits; sequence matching is not supported)")
    return int(tag)


def _non_negative(name: str, value: str) -> int:
    if not value.isdigit():
        raise QueryError(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def parse_query(params: Iterable[tuple[str, str]]) -> Query:
    query = Query()
    for name, value in params:
        lowered = name.lower()
        if lowered == "limit":
            query.limit = min(_non_negative(name, value), MAX_LIMIT)
        elif lowered == "offset":
            query.offset = _non_negative(name, value)
        elif lowered == "fuzzymatching":
            query.fuzzy = value.lower() == "true"
        elif lowered == "includefield":
            for item in value.split(","):
                if item.strip().lower() == "all":
                    query.include_all = True
                elif item.strip():
                    query.include.add(attribute_tag(item.strip()))
        else:
            query.filters[attribute_tag(name)] = value
    return query


# Matching ------------------------------------------------------------------
def _wildcard(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _fuzzy_name(wanted: str, value: str) -> bool:
    """Any name component (family, given, ...) starts with the query, ignoring case: 'smi' matches 'Smith^John'."""
    stem = wanted.replace("*", "").replace("?", "").lower()
    return any(part.startswith(stem) for part in re.split(r"[\^=\s,]+", value.lower()) if part)


def match_value(value: str, wanted: str, vr: str, fuzzy: bool) -> bool:
    """One value against one query value: UID list, range (dates and times), wildcard, person name, single value."""
    if vr == "UI":
        return value in {uid.strip() for uid in re.split(r"[,\\]", wanted)}
    if vr in ("DA", "TM", "DT") and "-" in wanted:
        low, _, high = wanted.partition("-")
        return (not low or value >= low) and (not high or value[: len(high)] <= high)
    if vr == "PN":
        return _wildcard(wanted, value, ignore_case=True) or (fuzzy and _fuzzy_name(wanted, value))
    if "\\" in wanted:
        return value in wanted.split("\\")
    if "*" in wanted or "?" in wanted:
        return _wildcard(wanted, value, ignore_case=False)
    return value == wanted


def matches(element: DataElement | None, wanted: str, fuzzy: bool) -> bool:
    """An attribute against its query value; an empty query value matches everything (it asks for the attribute)."""
    if wanted == "":
        return True
    if element is None or element.value in (None, "", []):
        return False
    values = list(element.value) if isinstance(element.value, (MultiValue, list)) else [element.value]
    return any(match_value(str(value), wanted, element.VR, fuzzy) for value in values)


# Results -------------------------------------------------------------------
def level_key(level: Level, entry: Entry) -> tuple[str, ...]:
    if level == "study":
        return (entry.study_uid,)
    if level == "series":
        return (entry.study_uid, entry.series_uid)
    return (entry.study_uid, entry.series_uid, entry.sop_uid)


def group(level: Level, entries: Sequence[Entry]) -> list[list[Entry]]:
    """The instances of each study, series or instance, in the catalogue's order."""
    groups: dict[tuple[str, ...], list[Entry]] = {}
    for entry in entries:
        groups.setdefault(level_key(level, entry), []).append(entry)
    return list(groups.values())


def level_attributes(level: Level, members: Sequence[Entry]) -> Dataset:
    """The attributes of one study, series or instance: its first instance's, plus the counts of its level."""
    header = members[0].header()
    ds = Dataset()
    for keyword in LEVEL_KEYS[level]:
        if keyword in header:
            ds[keyword] = header[keyword]
    if level == "study":
        series = group("series", members)
        modalities = sorted({str(s[0].header().get("Modality", "")) for s in series} - {""})
        ds.ModalitiesInStudy = modalities
        ds.NumberOfStudyRelatedSeries = len(series)
        ds.NumberOfStudyRelatedInstances = len(members)
    elif level == "series":
        ds.NumberOfSeriesRelatedInstances = len(members)
    return ds


def element(ds: Dataset, header: Dataset, tag: int) -> DataElement | None:
    if tag in ds:
        return ds[tag]
    return header[tag] if tag in header else None


def answer(level: Level, entries: Sequence[Entry], query: Query) -> list[Dataset]:
    """The matching studies, series or instances (one page of them), with the attributes asked for."""
    found = []
    for members in group(level, entries):
        ds = level_attributes(level, members)
        header = members[0].header()
        if not all(matches(element(ds, header, tag), wanted, query.fuzzy) for tag, wanted in query.filters.items()):
            continue
        wanted_tags = set(query.include) | set(query.filters)
        if query.include_all:
            wanted_tags |= {elem.tag for elem in header if elem.tag.group > 0x0002}
        for tag in sorted(wanted_tags):
            if tag not in ds and tag in header:
                ds[tag] = header[tag]
        found.append(ds)
    return found[query.offset : query.offset + query.limit]

