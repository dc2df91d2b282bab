"""The identifiers read straight from the checked bytes are the ones pydicom reads, whatever the values hold."""

from __future__ import annotations

import struct
import warnings

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR

from dicom_node.store.checks import checked_dataset
from dicom_node.store.ingest import _TAGS, IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG, InstanceMeta
from tests.hostile.corpus import ELE, ILE, encode, image

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
# What archives write, and what they should not: padding, several values, other character sets, escapes, numbers
VALUE = st.lists(st.sampled_from([b"1", b"2.5", b"A", b"z", b" ", b"\0", b"\\", b"^", b"+", b"-", b"=", b"\xc3\xa9", b"\x1b$B", b"9" * 30]), max_size=8)
ELEMENT = st.tuples(st.sampled_from(sorted(_TAGS)), VALUE, st.booleans())


@pytest.fixture(autouse=True)
def lenient_reading():
    """As the node reads (node.py): pydicom's own value warnings off."""
    previous = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    yield
    pydicom.config.settings.reading_validation_mode = previous


def element(tag: int, value: bytes, explicit: bool, vr: str) -> bytes:
    value += b" " * (len(value) % 2)
    if explicit:
        return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def outcome(read) -> object:  # type: ignore[no-untyped-def]
    try:
        return read()
    except Exception as exc:  # the same refusal (or failure) either way
        return type(exc).__name__, str(exc)


def both_ways(data: bytes, syntax: str) -> tuple[object, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = checked_dataset(data, syntax, 1 << 20, IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG)
        return outcome(lambda: InstanceMeta.from_checked(checked, syntax)), outcome(lambda: InstanceMeta.from_encoded(data, syntax))


@FUZZ
@given(st.lists(ELEMENT, max_size=12), st.booleans(), st.booleans())
def test_identifiers_read_from_the_walk_are_pydicoms(elements: list[tuple[str, list[bytes], bool]], explicit: bool, odd_vr: bool) -> None:
    chosen = {_TAGS[keyword]: (b"".join(parts), wrong) for keyword, parts, wrong in elements}
    data = b"".join(
        element(tag, value, explicit, "LO" if odd_vr and wrong and dictionary_VR(tag) != "LO" else dictionary_VR(tag))
        for tag, (value, wrong) in sorted(chosen.items())
    )
    fast, pydicom_way = both_ways(data, ELE if explicit else ILE)
    assert fast == pydicom_way


def test_a_real_header_and_one_read_past_instance_number() -> None:
    ds = image(PatientName="DOE^JANE", PatientID="P 01 ", AccessionNumber="A1", SeriesNumber="3", InstanceNumber="12")
    for syntax, implicit in ((ELE, False), (ILE, True)):
        fast, pydicom_way = both_ways(encode(ds, implicit=implicit), syntax)
        assert fast == pydicom_way and isinstance(fast, InstanceMeta) and fast.instance_number == 12 and fast.patient_id == "P 01"
    late = encode(image()) + element(0x00100020, b"LATE", True, "LO")  # after Pixel Data: pydicom has stopped reading
    fast, pydicom_way = both_ways(late, ELE)
    assert fast == pydicom_way
