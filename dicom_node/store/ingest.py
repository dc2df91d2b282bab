"""Index one received instance: patient, study, series and instance rows, in one transaction.

The SCP calls this after the file is durably on disk and before it answers:
the commit is the point of no return. Patient/study/series rows are created on
first sight and their ids cached, so an instance costs a handful of statements.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.checks import NOT_MATCHING, CheckedDataSet, Problem, Refused
from dicom_node.store.models import MAX_IDENTIFIER, AssociationSeries, Instance, Patient, Series, Study, pipeline_names, utcnow
from dicom_node.store.rawsql import RawConnections, first

log = logging.getLogger(__name__)

LAST_IDENTIFIER_TAG = 0x00200013  # Instance Number
_TAGS = {
    keyword: tag_for_keyword(keyword)
    for keyword in (
        "SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "IssuerOfPatientID", "PatientName",
        "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber", "StudyDescription", "Modality", "SeriesDescription",
        "StudyID", "SeriesNumber", "InstanceNumber",
    )
}
_TAG_LIST = list(_TAGS.values())
IDENTIFIER_TAGS = frozenset(_TAG_LIST)  # what `checks.checked_dataset` is asked to locate for `InstanceMeta.from_checked`
_VRS = {tag: dictionary_VR(tag).encode("ascii") for tag in _TAG_LIST}
_WHOLE_NUMBER = re.compile(r" *[+-]?[0-9]+")  # an IS pydicom reads as this integer (trailing spaces already stripped)
UNDEFINED_LENGTH = 0xFFFFFFFF
PIXEL_DATA_TAG = 0x7FE00010


# The statements of the common receive path, with `?` placeholders (`RawConnections.sql` adapts them).
_STATEMENTS = {
    "insert": "INSERT INTO instance (sop_instance_uid, sop_class_uid, series_fk, instance_number, transfer_syntax_uid, path, size,"
    " association_fk, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "count": "UPDATE series SET instance_count = instance_count + 1, last_received_at = ? WHERE id = ?",
    "pending": "UPDATE series SET instance_count = instance_count + 1, pending = ?, last_received_at = ?, pipeline = ? WHERE id = ?",
    "linked": "SELECT series_fk FROM association_series WHERE association_fk = ? AND series_fk = ?",
    "link": "INSERT INTO association_series (association_fk, series_fk) VALUES (?, ?)",
    "path": "SELECT path FROM instance WHERE sop_instance_uid = ?",
    "inserted": "SELECT id FROM instance WHERE sop_instance_uid = ? AND received_at = ?",
}


class DuplicateInstance(Exception):
    """The SOP Instance UID is already indexed (under `path`, relative to the data dir)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def decode_data_set(raw: bytes | memoryview, transfer_syntax_uid: str, stop_when: Callable[[BaseTag, str | None, int], bool] | None = None) -> Dataset:
    """An encoded data set as it came off the wire (no file meta), parsed lazily: values are decoded when read."""
    syntax = UID(transfer_syntax_uid)
    data = bytes(raw)
    if syntax == DeflatedExplicitVRLittleEndian:
        data = zlib.decompress(data, -zlib.MAX_WBITS)
    dataset = read_dataset(io.BytesIO(data), syntax.is_implicit_VR, syntax.is_little_endian, stop_when=stop_when)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax
    return dataset


def same_data_set(first: Dataset, second: Dataset) -> bool:
    """True if two data sets hold the same attributes and the same pixel values, however each was encoded.

    The same instance sent by another PACS may come in another transfer syntax,
    with other file meta or explicit instead of implicit VR: it is still the same
    instance. Group lengths are encoding, not content, and are not compared.
    """
    tags = {tag for tag in (*first.keys(), *second.keys()) if tag.element != 0}
    for tag in sorted(tags):
        if tag not in first or tag not in second:
            return False
        if tag == PIXEL_DATA_TAG:
            if not np.array_equal(first.pixel_array, second.pixel_array):
                return False
        elif first[tag].value != second[tag].value:
            return False
    return True


@dataclass(frozen=True)
class InstanceMeta:
    """The identifying attributes of a received instance, read from its dataset."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    accession_number: str = ""
    study_description: str = ""
    modality: str = ""
    series_description: str = ""
    series_number: int | None = None
    instance_number: int | None = None

    @classmethod
    def from_encoded(cls, data: bytes | bytearray | memoryview, transfer_syntax_uid: str) -> InstanceMeta:
        """Read the identifiers from an encoded data set, parsing only the elements up to (0020,0013).

        Everything the index needs sits before Instance Number; not walking the
        other elements (and the pixel data) halves the parse time per instance.
        A deflated data set is passed inflated (`checks.checked_dataset`).
        """
        syntax = UID(transfer_syntax_uid)
        dataset = read_dataset(
            io.BytesIO(data),
            syntax.is_implicit_VR,
            syntax.is_little_endian,
            stop_when=lambda tag, vr, length: tag > LAST_IDENTIFIER_TAG,
            specific_tags=_TAG_LIST,  # the others are skipped unread (Specific Character Set is always kept)
        )
        return cls.from_dataset(dataset, transfer_syntax_uid)

    @classmethod
    def from_checked(cls, checked: CheckedDataSet, transfer_syntax_uid: str) -> InstanceMeta:
        """The identifiers of a checked data set (`checks.checked_dataset(..., IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG)`).

        Read straight from the bytes where the check's walk found them when every one is plain text that pydicom
        would read as is (ASCII, one value, the dictionary's VR): a tenth of pydicom's parse, which ran before every
        C-STORE answer. Anything else is parsed by pydicom (`from_encoded`), so the result is the same either way.
        """
        values = _plain_values(checked)
        if values is None:
            return cls.from_encoded(checked.data, transfer_syntax_uid)
        return cls.from_values(values.get, transfer_syntax_uid)

    @classmethod
    def from_dataset(cls, ds: Dataset, transfer_syntax_uid: str) -> InstanceMeta:
        def get(keyword: str) -> Any:
            """The value, looked up by tag: by keyword costs several times more, and this runs per image."""
            element = ds.get(_TAGS[keyword])
            return None if element is None else element.value

        return cls.from_values(get, transfer_syntax_uid)

    @classmethod
    def from_values(cls, get: Callable[[str], Any], transfer_syntax_uid: str) -> InstanceMeta:
        """From `get(keyword)`: the value as pydicom reads it, None when absent."""

        def identifier(keyword: str) -> str:
            """The value exactly as received, less its trailing padding: never cut, never otherwise normalised."""
            value = get(keyword)
            if value is None:
                return ""
            text = "\\".join(map(str, value)) if isinstance(value, MultiValue) else str(value)  # a backslash is kept as written
            text = text.rstrip(" \0")
            if len(text) > MAX_IDENTIFIER:
                raise Refused(Problem(NOT_MATCHING, f"{keyword} is {len(text)} characters long (at most {MAX_IDENTIFIER} are indexed)"))
            return text

        def text(keyword: str, limit: int) -> str:
            """A descriptive value for display, cut to its column."""
            value = get(keyword)
            return "" if value is None else str(value).strip()[:limit]

        def number(keyword: str) -> int | None:
            try:
                value = get(keyword)
                return None if value in (None, "") else int(value)
            except (TypeError, ValueError):
                return None

        return cls(
            sop_instance_uid=identifier("SOPInstanceUID"),
            sop_class_uid=identifier("SOPClassUID"),
            study_instance_uid=identifier("StudyInstanceUID"),
            series_instance_uid=identifier("SeriesInstanceUID"),
            transfer_syntax_uid=transfer_syntax_uid,
            patient_id=identifier("PatientID"),
            issuer_of_patient_id=identifier("IssuerOfPatientID"),
            patient_name=text("PatientName", 324),
            patient_birth_date=text("PatientBirthDate", 8),
            patient_sex=text("PatientSex", 16),
            study_date=text("StudyDate", 8),
            study_time=text("StudyTime", 16),
            study_id=text("StudyID", 16),
            accession_number=identifier("AccessionNumber"),
            study_description=text("StudyDescription", 64),
            modality=text("Modality", 16),
            series_description=text("SeriesDescription", 64),
            series_number=number("SeriesNumber"),
            instance_number=number("InstanceNumber"),
        )


def _plain_values(checked: CheckedDataSet) -> dict[str, str] | None:
    """The identifiers' values as pydicom reads them, by keyword, when each is plain: ASCII without backslash or
    escape, NUL at most as its padding, in the dictionary's VR, whole numbers for IS, names without component groups.
    None: pydicom must read them (another character set, several values, a sequence, an odd VR, a name's `=`)."""
    values: dict[str, str] = {}
    data = checked.data
    for keyword, tag in _TAGS.items():
        located = checked.elements.get(tag)
        if located is None:
            continue
        vr, pos, length = located
        expected = _VRS[tag]
        if length == UNDEFINED_LENGTH or (vr and vr != expected):
            return None
        raw = bytes(data[pos : pos + length])
        if not raw.isascii() or b"\\" in raw or b"\x1b" in raw or b"\0" in raw[:-1]:
            return None
        if expected == b"PN" and b"=" in raw:  # component groups: pydicom's PersonName reads them (a lone '=' as '')
            return None
        text = raw.decode("ascii").rstrip("\0 ")
        if expected == b"UI":
            text = text.strip()  # pydicom's UID strips both ends
        elif expected == b"IS" and text and _WHOLE_NUMBER.fullmatch(text) is None:
            return None
        values[keyword] = text
    return values


class Indexer:
    """Writes instance rows; safe to share between association threads and between processes on one database.

    A new instance (the common case) is indexed with plain DB-API statements
    (`rawsql`), not SQLAlchemy: this runs before every C-STORE answer, so its
    cost is paid per image by the sending PACS. Rows created once per series
    and re-sent instances go through the ORM and Core as before.
    """

    def __init__(self, sessions: sessionmaker[Session], job_sop_classes: Mapping[str, Collection[str]] | None = None) -> None:
        """`job_sop_classes`: per pipeline, the SOP classes whose instances make their series pending a job
        (`Config.job_sop_classes`); the others (results, non-images, anything the pipeline does not select) are
        stored and indexed only. None: every class starts a job."""
        self._sessions = sessions
        self._job_classes = None if job_sop_classes is None else {name: frozenset(uids) for name, uids in job_sop_classes.items()}
        self._engine = sessions.kw["bind"]
        self._series_ids: dict[str, int] = {}
        self._linked: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self._raw = RawConnections(self._engine)
        self._sql = {name: self._raw.sql(text) for name, text in _STATEMENTS.items()}

    @property
    def database_url(self) -> str:
        """Where the index is (its file decides whether the index commit also makes the data's renames durable)."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close the connections of the receive path (the engine's pool does not know them)."""
        self._raw.close()

    def association_ended(self, association_id: int) -> None:
        """Drop the ended association's links from the cache (one entry per association and series, for good otherwise)."""
        with self._lock:
            self._linked = {link for link in self._linked if link[0] != association_id}

    def forget(self, series_instance_uid: str) -> None:
        """Drop a deleted series' cached id (retention), so its next instance creates the rows again."""
        with self._lock:
            self._series_ids.pop(series_instance_uid, None)

    def indexed_path(self, sop_instance_uid: str) -> Path | None:
        """Where an indexed instance is stored, or None if it is not indexed (asked for every re-sent instance)."""
        stored = self._raw.run(lambda cursor: first(cursor, self._sql["path"], (sop_instance_uid,)))
        return None if stored is None else Path(stored)

    def record(self, meta: InstanceMeta, relpath: Path, size: int, association_id: int | None, pipeline: str, replace: bool) -> None:
        """Insert (or, with `replace`, update) the instance row and mark its series pending a job, in one commit.

        Instances of a class that starts no job (results, non-images) are indexed without making their series pending.

        An insert of a UID that is already indexed raises DuplicateInstance with the stored path, so the
        caller can apply its duplicate policy (the SCP finds most duplicates earlier, by their file).
        """
        series_id = self._series_id(meta, pipeline)
        now = utcnow()
        values = dict(
            sop_class_uid=meta.sop_class_uid,
            series_fk=series_id,
            instance_number=meta.instance_number,
            transfer_syntax_uid=meta.transfer_syntax_uid,
            path=str(relpath),
            size=size,
            association_fk=association_id,
            received_at=now,
        )
        link = association_id is not None and (association_id, series_id) not in self._linked
        if not replace:
            try:
                self._insert(meta, values, series_id, association_id if link else None, pipeline, now)
            except self._raw.integrity_error:
                stored = self.indexed_path(meta.sop_instance_uid)
                if stored is not None:
                    raise DuplicateInstance(stored) from None
                # Not a duplicate: the cached series row is gone (retention in another process deleted it).
                self.forget(meta.series_instance_uid)
                values["series_fk"] = series_id = self._series_id(meta, pipeline)
                self._insert(meta, values, series_id, association_id, pipeline, now)
                link = association_id is not None
        else:
            self._replace(meta, values, series_id, association_id if link else None, pipeline, now)
        if link:
            with self._lock:
                self._linked.add((association_id, series_id))  # type: ignore[arg-type]

    def _starts_job(self, sop_class_uid: str, pipeline: str) -> bool:
        return self._job_classes is None or any(sop_class_uid in self._job_classes.get(name, ()) for name in pipeline_names(pipeline))

    def _insert(
        self, meta: InstanceMeta, values: dict[str, Any], series_id: int, link: int | None, pipeline: str, now: datetime
    ) -> None:
        """The common case, in plain DB-API statements (`rawsql`): the instance row, its series' count and pending
        flag, and (once per association and series) the link that holds the series back while the association is
        open; one commit."""
        raw = self._raw
        received = raw.timestamp(now)

        def insert(cursor: Any) -> None:
            cursor.execute(self._sql["insert"], (
                meta.sop_instance_uid, values["sop_class_uid"], series_id, values["instance_number"], values["transfer_syntax_uid"],
                values["path"], values["size"], values["association_fk"], received,
            ))
            if self._starts_job(meta.sop_class_uid, pipeline):
                cursor.execute(self._sql["pending"], (True, received, pipeline, series_id))
            else:
                cursor.execute(self._sql["count"], (received, series_id))
            if link is not None and first(cursor, self._sql["linked"], (link, series_id)) is None:
                cursor.execute(self._sql["link"], (link, series_id))

        def inserted(cursor: Any) -> bool:
            """After a connection dropped during the commit: whether this very row made it (its reception time)."""
            return first(cursor, self._sql["inserted"], (meta.sop_instance_uid, received)) is not None

        raw.run(insert, writes=True, committed=inserted)

    def _replace(
        self, meta: InstanceMeta, values: dict[str, Any], series_id: int, link: int | None, pipeline: str, now: datetime
    ) -> None:
        """A re-sent instance (rare): update its row, and move it between series if it changed series."""
        replace = True
        with self._engine.begin() as conn:
            left = conn.scalar(select(Instance.series_fk).where(Instance.sop_instance_uid == meta.sop_instance_uid))
            conn.execute(update(Instance).where(Instance.sop_instance_uid == meta.sop_instance_uid).values(**values))
            if left is not None and left != series_id:
                self._moved(conn, meta, left, now)
                replace = False  # counted in its new series below
            counted = Series.instance_count + (0 if replace else 1)
            if not self._starts_job(meta.sop_class_uid, pipeline):
                conn.execute(update(Series).where(Series.id == series_id).values(instance_count=counted, last_received_at=now))
            else:
                conn.execute(
                    update(Series)
                    .where(Series.id == series_id)
                    .values(instance_count=counted, pending=True, last_received_at=now, pipeline=pipeline)
                )
            if link is not None and conn.execute(
                select(AssociationSeries.series_fk).where(AssociationSeries.association_fk == link, AssociationSeries.series_fk == series_id)
            ).first() is None:
                conn.execute(insert(AssociationSeries).values(association_fk=link, series_fk=series_id))

    def _moved(self, conn: Connection, meta: InstanceMeta, left: int, now: datetime) -> None:
        """An instance re-sent under another series (or study, or patient) leaves its old series: the count drops and
        the old series is pending again, so its job is queued anew (superseding the one whose results included it)."""
        conn.execute(
            update(Series).where(Series.id == left).values(instance_count=Series.instance_count - 1, pending=True, last_received_at=now)
        )
        old_series, old_study = conn.execute(
            select(Series.series_instance_uid, Study.study_instance_uid).join(Study, Study.id == Series.study_fk).where(Series.id == left)
        ).one()
        log.warning(
            "instance %s moved from series %s (study %s) to series %s (study %s, patient %r): the series it left is processed again",
            meta.sop_instance_uid, old_series, old_study, meta.series_instance_uid, meta.study_instance_uid, meta.patient_id,
            extra={"series": meta.series_instance_uid, "study": meta.study_instance_uid},
        )

    def _series_id(self, meta: InstanceMeta, pipeline: str) -> int:
        """The series row's id, creating patient, study and series rows on first sight (committed at once)."""
        with self._lock:
            cached = self._series_ids.get(meta.series_instance_uid)
        if cached is not None:
            return cached
        for attempt in range(3):
            try:
                with self._sessions.begin() as session:
                    series_id = self._find_or_create_series(session, meta, pipeline)
                break
            except (IntegrityError, OperationalError):
                # Another association (or receiving process) created the same rows concurrently: look again. On
                # SQLite the look-up's read may also have to give way to that writer ("database is locked").
                if attempt == 2:
                    raise
        with self._lock:
            self._series_ids[meta.series_instance_uid] = series_id
        return series_id

    def _find_or_create_series(self, session: Session, meta: InstanceMeta, pipeline: str) -> int:
        series = session.scalar(select(Series).where(Series.series_instance_uid == meta.series_instance_uid))
        if series is not None:
            return series.id
        study = session.scalar(select(Study).where(Study.study_instance_uid == meta.study_instance_uid))
        if study is None:
            patient = session.scalar(
                select(Patient).where(Patient.patient_id == meta.patient_id, Patient.issuer == meta.issuer_of_patient_id)
            )
            if patient is None:
                patient = Patient(
                    patient_id=meta.patient_id,
                    issuer=meta.issuer_of_patient_id,
                    patient_name=meta.patient_name,
                    birth_date=meta.patient_birth_date,
                    sex=meta.patient_sex,
                )
                session.add(patient)
                session.flush()
            elif patient.patient_name != meta.patient_name:
                patient.names_differ = True
                log.warning(
                    "study %s: patient %r (issuer %r) came as %r, an earlier study as %r: each study keeps its own name",
                    meta.study_instance_uid, meta.patient_id, meta.issuer_of_patient_id, meta.patient_name, patient.patient_name,
                    extra={"study": meta.study_instance_uid},
                )
            study = Study(
                study_instance_uid=meta.study_instance_uid,
                patient_fk=patient.id,
                patient_name=meta.patient_name,
                study_date=meta.study_date,
                study_time=meta.study_time,
                study_id=meta.study_id,
                accession_number=meta.accession_number,
                description=meta.study_description,
            )
            session.add(study)
            session.flush()
        series = Series(
            series_instance_uid=meta.series_instance_uid,
            study_fk=study.id,
            modality=meta.modality,
            description=meta.series_description,
            series_number=meta.series_number,
            pipeline=pipeline,
        )
        session.add(series)
        session.flush()
        return series.id
