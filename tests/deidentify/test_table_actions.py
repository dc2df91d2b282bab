"""Table-driven: every attribute of PS3.15 Table E.1-1 (read here from the same file the node uses) gets the action
the table and the chosen options say, under the basic profile alone, the default options and every option.

The table lists attributes of every IOD; all of them are tested, which covers those of CT, SEG, SR and secondary
capture. Patient ID, Patient's Name and Accession Number (Z) get the node's keyed pseudonyms instead of empty values,
which Z allows ("or a dummy value").
"""

from __future__ import annotations

import csv
import re
from datetime import date, timedelta

import pytest
from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from dicom_node.config import DeidentificationProfile
from dicom_node.deidentify.deidentifier import Deidentifier, NotDeidentifiable
from dicom_node.deidentify.pseudonyms import Pseudonyms
from dicom_node.deidentify.table import TABLE

KEY = bytes(range(32))
PATIENT_ID, PATIENT_NAME = "PID-ORIGINAL", "DOE^JANE"
TEXT = "SAMPLE DOE"  # a descriptor naming the patient: cleaning cuts the name out
SAMPLES = {
    "AE": "SAMPLEAE", "AS": "042Y", "CS": TEXT, "DA": "20200305", "DT": "20200305101010", "TM": "101010", "DS": "1.5",
    "IS": "7", "LO": TEXT, "SH": TEXT, "LT": TEXT, "ST": TEXT, "UT": TEXT, "UC": TEXT, "PN": "SAMPLE^DOE",
    "UI": "1.2.826.0.1.3680043.99.1", "UR": "http://example.org/doe", "US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 1.5,
    "FD": 1.5, "OB": b"\x01\x02", "OW": b"\x01\x02", "UN": b"\x01\x02", "AT": 0x00100010, "OF": b"\x00\x00\x80\x3f",
    "OD": b"\x00" * 8, "OL": b"\x00" * 4,
}  # fmt: skip
OPTION_FIELDS = {
    "rtnSafePrivOpt": "retain_safe_private", "rtnUIDsOpt": "retain_uids", "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity", "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongModifDatesOpt": "retain_longitudinal_modified_dates", "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
}  # fmt: skip
PROFILES = {
    "basic": DeidentificationProfile(enabled=True, **{field: False for field in OPTION_FIELDS.values()}),
    "default": DeidentificationProfile(enabled=True),
    "every option": DeidentificationProfile(enabled=True, **{field: True for field in OPTION_FIELDS.values()}),
}


def table_rows() -> list[dict[str, str]]:
    with open(TABLE) as table:
        lines = [line for line in table if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def concrete_tag(tag: str) -> int | None:
    """The table's tag as one concrete tag pydicom knows the VR of (50xx/60xx: the first group)."""
    if not re.fullmatch(r"[0-9A-Fx]{8}", tag):
        return None
    concrete = int(tag.replace("x", "0"), 16)
    if tag.startswith("50") and "x" in tag:
        concrete = 0x50000010  # Curve: Number of Points stands for the group
    return concrete if dictionary_has_tag(concrete) else None


def expected_action(row: dict[str, str], profile: DeidentificationProfile) -> str:
    """The table's entry for the chosen options (an option's entry replaces the basic one; K over C over X), then a
    compound's last choice, as the node documents."""
    entries = {row[column] for column, field in OPTION_FIELDS.items() if getattr(profile, field) and row[column]}
    action = next((a for a in ("K", "C", "X") if a in entries), row["basic"])
    return action.split("/")[-1]


def _base() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.PatientID, ds.PatientName = PATIENT_ID, PATIENT_NAME
    return ds


def _sample(vr: str):  # type: ignore[no-untyped-def]
    if vr == "SQ":
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "1", "99TEST", "sample"
        return Sequence([item])
    return SAMPLES[vr]


ROWS = [row for row in table_rows() if concrete_tag(row["tag"]) is not None]


def test_the_table_is_the_whole_of_table_e1_1_and_nearly_all_of_it_is_tested() -> None:
    rows = table_rows()
    assert len(rows) >= 650 and {row["basic"] for row in rows} == {"D", "Z", "X", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    assert len(ROWS) >= 0.9 * len(rows), f"only {len(ROWS)} of {len(rows)} attributes are known to pydicom"


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row['tag']}-{row['basic']}")
def test_attribute_gets_the_tables_action(row: dict[str, str]) -> None:
    for profile in PROFILES.values():
        _check_profile(row, profile)


def _check_profile(row: dict[str, str], profile: DeidentificationProfile) -> None:
    tag = Tag(concrete_tag(row["tag"]))
    vr = dictionary_VR(tag).split(" ")[0]
    assert vr in SAMPLES or vr == "SQ", f"no sample value for VR {vr}"
    ds = _base()
    original = _sample(vr)
    if tag not in ds:
        ds.add_new(tag, vr, original)
    original = ds[tag].value if vr != "SQ" else original
    action = expected_action(row, profile)
    pseudonyms = Pseudonyms(KEY)
    if keyword_for_tag(tag) == "ContentSequence" and action == "D":
        with pytest.raises(NotDeidentifiable):  # replacing an SR's content by a dummy would destroy it: not sent
            Deidentifier(profile, pseudonyms).apply(ds)
        return
    Deidentifier(profile, pseudonyms).apply(ds)
    keyword = keyword_for_tag(tag)
    if keyword in ("PatientID", "PatientName"):
        assert ds[tag].value == Pseudonyms(KEY).patient_id(PATIENT_ID, "")
        return
    if keyword == "AccessionNumber":
        assert ds[tag].value == Pseudonyms(KEY).accession(str(original))
        return
    days = Pseudonyms(KEY).date_shift_days(PATIENT_ID, "", profile.max_date_shift_days) if profile.retain_longitudinal_modified_dates else 0
    _check(ds, tag, vr, original, action, days)


def _check(ds: Dataset, tag: Tag, vr: str, original: object, action: str, days: int) -> None:
    if action == "X":
        assert tag not in ds
        return
    assert tag in ds, f"{action}: removed"
    value = ds[tag].value
    if action == "K":
        assert value == original
    elif action == "Z":
        assert value in (None, "", b"") or (vr == "SQ" and len(value) == 0)
    elif action == "U":
        assert value == Pseudonyms(KEY).uid(str(original))
    elif action in ("D", "C", "U*") and vr == "SQ":
        assert len(value) == 1 and value[0].CodeMeaning == "sample"  # items kept, de-identified where the table says
    elif action == "D":
        assert value != original and (vr not in ("DA", "DT", "TM", "PN", "LO", "SH", "CS", "UI") or value)
    elif action == "C" and vr in ("DA", "DT"):
        moved = (date(2020, 3, 5) - timedelta(days=days)).strftime("%Y%m%d")
        assert str(value) == moved + str(original)[8:]
    elif action == "C" and vr == "TM":
        assert value == original  # a shift of whole days keeps the time
    elif action == "C" and isinstance(original, str):
        assert str(value) == re.sub("DOE", "", str(original)).strip()
    elif action == "C":
        assert value == original
    else:
        raise AssertionError(f"unexpected action {action}")


def test_private_attributes_are_removed_unless_their_creator_is_safe() -> None:
    ds = _base()
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "OB", b"\x00")
    ds.add_new(0x00090010, "LO", "SAFE CREATOR")
    ds.add_new(0x00091001, "LO", "kept")
    profile = DeidentificationProfile(enabled=True, retain_safe_private=True, safe_private_creators=["SAFE CREATOR"])
    Deidentifier(profile, Pseudonyms(KEY)).apply(ds)
    assert 0x00291010 not in ds and 0x00290010 not in ds and ds[0x00091001].value == "kept"
    Deidentifier(DeidentificationProfile(enabled=True), Pseudonyms(KEY)).apply(ds)
    assert not any(elem.tag.is_private for elem in ds)


def test_references_in_nested_sequences_map_like_the_instances_they_reference() -> None:
    """A SEG's Source Image Sequence deep in its per-frame groups maps to the same UID as the CT slice's own SOP Instance UID."""
    ct, seg = _base(), _base()
    ct.SOPInstanceUID = "1.2.3.4.100"
    source = Dataset()
    source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = ct.SOPClassUID, ct.SOPInstanceUID
    derivation = Dataset()
    derivation.SourceImageSequence = [source]
    frame = Dataset()
    frame.DerivationImageSequence = [derivation]
    seg.PerFrameFunctionalGroupsSequence = [frame]
    for ds in (ct, seg):
        Deidentifier(DeidentificationProfile(enabled=True), Pseudonyms(KEY)).apply(ds)
    mapped = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert mapped.ReferencedSOPInstanceUID == ct.SOPInstanceUID != "1.2.3.4.100"
    assert mapped.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # SOP classes are no identity


def test_burned_in_annotation_keeps_images_away_unless_the_pixels_were_cleaned() -> None:
    for burned, sop_class in (("YES", "1.2.840.10008.5.1.4.1.1.2"), (None, "1.2.840.10008.5.1.4.1.1.7")):
        ds = _base()
        ds.SOPClassUID = sop_class
        ds.PixelData = b"\x00\x00"
        if burned:
            ds.BurnedInAnnotation = burned
        with pytest.raises(NotDeidentifiable, match="pixels_cleaned"):
            Deidentifier(DeidentificationProfile(enabled=True), Pseudonyms(KEY)).apply(ds)
        Deidentifier(DeidentificationProfile(enabled=True, pixels_cleaned=True), Pseudonyms(KEY)).apply(ds)
        assert ds.BurnedInAnnotation == "NO" and "113101" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}


def test_markers_list_the_profile_and_its_options() -> None:
    ds = _base()
    ds.StudyDate = "20200305"
    Deidentifier(PROFILES["default"], Pseudonyms(KEY)).apply(ds)
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100", "113107", "113105", "113104"]
    ds = _base()
    ds.StudyDate = "20200305"
    Deidentifier(PROFILES["basic"], Pseudonyms(KEY)).apply(ds)
    assert ds.LongitudinalTemporalInformationModified == "REMOVED" and not ds.StudyDate
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100"]


def test_a_reports_text_is_cleaned_of_the_patients_identity_under_clean_structured_content() -> None:
    """Text Value has no row of its own in Table E.1-1: Clean Structured Content cleans it inside the content tree."""
    ds = _base()
    ds.AccessionNumber = "ACC778899"
    item = Dataset()
    item.ValueType, item.TextValue = "TEXT", "Findings for Jane Doe (ACC778899): opacity 12 %"
    ds.ContentSequence = [item]
    Deidentifier(PROFILES["default"], Pseudonyms(KEY)).apply(ds)
    assert ds.ContentSequence[0].TextValue == "Findings for   (): opacity 12 %"
