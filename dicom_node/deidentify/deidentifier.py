"""Apply a destination's de-identification profile to one data set, in memory (the stored file is untouched).

Every attribute, at every depth of every sequence, gets the action Table E.1-1 gives it under the profile's options
(`table.py`). What the table leaves open is decided here, once:
- a compound action (X/Z, X/D, Z/D, X/Z/D) takes its last, least destructive choice, which suits the attribute's
  type in any IOD (a Type 1 attribute needs D), so the object stays valid; X/Z/U* keeps the sequence and maps the
  UIDs inside it (Referenced Image, Source Image), so references still resolve;
- D on a sequence keeps its items and de-identifies them (Verifying Observer, Content Sequence under the options);
- C (clean) shifts dates by the patient's offset, cuts identifying values out of text, and walks sequences;
- Patient ID and Accession Number (Z) get their keyed pseudonyms, the Patient's Name the pseudonymous ID, so that
  the destination can tell patients and studies apart and link them over time.
The markers of PS3.15 E.1.1 and PS3.3 C.7.1.1 are added last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from dicom_node.config import DeidentificationProfile
from dicom_node.deidentify.pseudonyms import Pseudonyms
from dicom_node.deidentify.table import ActionTable, Option

PATIENT_ID, PATIENT_NAME, ACCESSION = Tag("PatientID"), Tag("PatientName"), Tag("AccessionNumber")
CONTENT_SEQUENCE, TEXT_VALUE = Tag("ContentSequence"), Tag("TextValue")
DEIDENTIFIED_BY = "dicom-node"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its multi-frame variants, .7.1 to .7.4
_TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "UC", "PN", "CS", "AE", "UR"}
_NUMBER_VRS = {"IS": "0", "DS": "0"}
_DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMOUS", "CS": "ANONYMIZED", "AS": "000D"}
# Values of these attributes are what "identifying" means when a description or a report's text is cleaned.
IDENTIFYING = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientBirthDate", "AccessionNumber", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "OperatorsName", "RequestingPhysician", "StationName", "PatientAddress", "StudyID",
)  # fmt: skip


class NotDeidentifiable(Exception):
    """The object cannot be sent to this destination as the profile stands; the message says why and what would."""


def chosen_options(profile: DeidentificationProfile) -> list[Option]:
    """The Table E.1-1 option columns the profile selects, in the table's order."""
    chosen = {
        Option.RETAIN_SAFE_PRIVATE: profile.retain_safe_private,
        Option.RETAIN_UIDS: profile.retain_uids,
        Option.RETAIN_DEVICE_IDENTITY: profile.retain_device_identity,
        Option.RETAIN_INSTITUTION_IDENTITY: profile.retain_institution_identity,
        Option.RETAIN_PATIENT_CHARACTERISTICS: profile.retain_patient_characteristics,
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: profile.retain_longitudinal_modified_dates,
        Option.CLEAN_DESCRIPTORS: profile.clean_descriptors,
        Option.CLEAN_STRUCTURED_CONTENT: profile.clean_structured_content,
    }
    return [option for option, on in chosen.items() if on]


def method_codes(profile: DeidentificationProfile) -> list[tuple[str, str]]:
    """(code value, meaning) of De-identification Method Code Sequence: the Basic Profile and each option applied."""
    codes = [("113100", "Basic Application Confidentiality Profile")]
    if profile.pixels_cleaned:
        codes.append(("113101", "Clean Pixel Data Option"))
    codes.extend((option.code, option.meaning) for option in chosen_options(profile))
    return codes


def effective_profile(profile: DeidentificationProfile) -> dict[str, object]:
    """What a destination gets, for the REST API: the settings, the method codes written into each object, the table."""
    if not profile.enabled:
        return {"enabled": False}
    return {
        **profile.model_dump(),
        "method_codes": [{"code": code, "scheme": "DCM", "meaning": meaning} for code, meaning in method_codes(profile)],
        "table": ActionTable.load().edition,
    }


def _shift_date(value: str, days: int) -> str:
    """YYYYMMDD moved back `days`; anything else (a partial date, a range) cannot be shifted exactly: emptied."""
    if not re.fullmatch(r"\d{8}", value):
        return ""
    try:
        return (date(int(value[:4]), int(value[4:6]), int(value[6:])) - timedelta(days=days)).strftime("%Y%m%d")
    except ValueError:
        return ""


def _shift(vr: str, value: str, days: int) -> str:
    if vr == "DA":
        return _shift_date(value, days)
    if vr == "DT":
        shifted = _shift_date(value[:8], days)
        return shifted + value[8:] if shifted else ""
    return value  # TM: a shift of whole days leaves times as they were


class Deidentifier:
    """One destination's profile under the node's key; `apply` changes a data set in place."""

    def __init__(self, profile: DeidentificationProfile, pseudonyms: Pseudonyms, table: ActionTable | None = None) -> None:
        self.profile = profile
        self.pseudonyms = pseudonyms
        self.table = table or ActionTable.load()
        self.options = chosen_options(profile)
        self.method = method_codes(profile)

    def check(self, ds: Dataset) -> None:
        """Refuse what this profile must not send: burned-in identity in the pixels, an SR it would destroy."""
        if "PixelData" in ds and not self.profile.pixels_cleaned:
            burned = str(ds.get("BurnedInAnnotation", "")).upper()
            if burned == "YES":
                raise NotDeidentifiable("Burned In Annotation is YES and the profile does not clean pixel data (pixels_cleaned)")
            if not burned and str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE):
                raise NotDeidentifiable("a secondary capture without Burned In Annotation may show identity in its pixels (pixels_cleaned)")
        if CONTENT_SEQUENCE in ds and not self.profile.clean_structured_content:
            raise NotDeidentifiable("Table E.1-1 replaces an SR's Content Sequence unless the profile cleans structured content")

    def apply(self, ds: Dataset) -> None:
        """De-identify `ds` in place; NotDeidentifiable (nothing changed) when it must not be sent."""
        self.check(ds)
        patient_id, issuer = str(ds.get("PatientID", "")), str(ds.get("IssuerOfPatientID", ""))
        self._identifying = sorted(set(_identifying_values(ds)), key=len, reverse=True)
        dated = self.profile.retain_longitudinal_modified_dates
        self._days = self.pseudonyms.date_shift_days(patient_id, issuer, self.profile.max_date_shift_days) if dated else 0
        pseudonymous_patient = self.pseudonyms.patient_id(patient_id, issuer)
        accession = self.pseudonyms.accession(str(ds.AccessionNumber or "")) if ACCESSION in ds else None
        self._walk(ds)
        ds.PatientID = pseudonymous_patient
        ds.PatientName = pseudonymous_patient
        if accession is not None:
            ds.AccessionNumber = accession
        self._mark(ds)

    def _walk(self, ds: Dataset) -> None:
        for elem in list(ds):
            if elem.tag.is_private:  # the table's row for private attributes: X, or C under Retain Safe Private
                if not self._safe_private(ds, elem.tag):
                    del ds[elem.tag]
                continue
            rule = self.table.rule(elem.tag)
            if rule is None:
                if elem.VR == "SQ":
                    self._walk_items(elem)
                elif elem.tag == TEXT_VALUE and Option.CLEAN_STRUCTURED_CONTENT in self.options:
                    elem.value = self.clean_text(elem.value)  # a report's free text: the table has no row for it
                continue
            self._act(ds, elem, rule.action(self.options).split("/")[-1])

    def _walk_items(self, elem: DataElement) -> None:
        for item in elem.value or []:
            self._walk(item)

    def _safe_private(self, ds: Dataset, tag: BaseTag) -> bool:
        """Kept only under Retain Safe Private, for the creators the profile lists (their creator elements too)."""
        if Option.RETAIN_SAFE_PRIVATE not in self.options:
            return False
        creator = ds.get(Tag(tag.group, tag.element if tag.element < 0x100 else tag.element >> 8))
        return creator is not None and str(creator.value) in self.profile.safe_private_creators

    def _act(self, ds: Dataset, elem: DataElement, action: str) -> None:
        if action == "K":
            return
        if action == "X":
            del ds[elem.tag]
        elif action == "U":
            self._map_uids(elem)
        elif action == "U*" or (action in ("D", "C") and elem.VR == "SQ"):
            self._walk_items(elem)
        elif action == "Z":
            elem.value = Sequence() if elem.VR == "SQ" else None
        elif action == "D":
            self._dummy(elem)
        elif action == "C":
            self._clean(elem)
        else:
            raise ValueError(f"{elem.tag}: unknown action {action!r} in the confidentiality table")

    def _map_uids(self, elem: DataElement) -> None:
        if elem.VR != "UI" or elem.value in (None, ""):
            return
        values = elem.value if elem.VM > 1 else [elem.value]
        mapped = [self.pseudonyms.uid(str(value)) for value in values]
        elem.value = mapped if elem.VM > 1 else mapped[0]

    def _dummy(self, elem: DataElement) -> None:
        if elem.VR == "UI":
            self._map_uids(elem)
        elif elem.VR in ("DA", "DT") and self._days:
            elem.value = _shift(elem.VR, str(elem.value or ""), self._days) or _DUMMY[elem.VR]
        elif elem.VR in _DUMMY:
            elem.value = _DUMMY[elem.VR]
        elif elem.VR in _NUMBER_VRS:
            elem.value = _NUMBER_VRS[elem.VR]
        elif elem.VR in _TEXT_VRS:
            elem.value = "ANONYMIZED"
        else:
            elem.value = None  # binary or numeric: zero length is the only value that cannot carry identity

    def _clean(self, elem: DataElement) -> None:
        if elem.VR in ("DA", "DT", "TM"):
            values = elem.value if elem.VM > 1 else [elem.value]
            shifted = [_shift(elem.VR, str(v or ""), self._days) for v in values]
            elem.value = shifted if elem.VM > 1 else shifted[0]
        elif elem.VR in _TEXT_VRS:
            elem.value = self.clean_text(elem.value)
        elif elem.VR == "UI":
            self._map_uids(elem)
        # other VRs (numbers, codes in binary) carry no text to clean

    def clean_text(self, value: object) -> object:
        """A text value with every identifying value of the object cut out (case-insensitive), for Clean options."""
        if value is None:
            return value
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            return [self.clean_text(v) for v in value]  # type: ignore[union-attr]
        text = str(value)
        for identifying in self._identifying:
            text = re.sub(re.escape(identifying), "", text, flags=re.IGNORECASE)
        return text.strip()

    def _mark(self, ds: Dataset) -> None:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = f"{DEIDENTIFIED_BY}: PS3.15 E.1-1 Basic Profile" + (
            " + options" if len(self.method) > 1 else ""
        )
        items = []
        for value, meaning in self.method:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = items
        # Without the dates option, dates were emptied or replaced by dummies.
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self._days else "REMOVED"
        if "PixelData" in ds and self.profile.pixels_cleaned:
            ds.BurnedInAnnotation = "NO"
        meta = getattr(ds, "file_meta", None)
        if isinstance(meta, FileMetaDataset) and "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _identifying_values(ds: Dataset) -> Iterator[str]:
    """The identifying strings of the object (each name component on its own), 3 characters or more.

    Top-level attributes only: the same attributes inside sequences are removed or replaced by the table anyway, and
    a look-up by keyword does not convert the rest of the data set (the walk does that once).
    """
    for keyword in IDENTIFYING:
        if keyword not in ds or ds[keyword].value in (None, ""):
            continue
        elem = ds[keyword]
        values = elem.value if elem.VM > 1 else [elem.value]
        for value in values:
            text = str(value)
            parts = [text, *re.split(r"[\^=]", text)] if elem.VR == "PN" else [text]
            yield from (part.strip() for part in parts if len(part.strip()) >= 3)
