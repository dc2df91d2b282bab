"""C-FIND key matching (PS3.4 C.2.2.2) on single values: what each kind of key accepts."""

from __future__ import annotations

import pytest
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dicom_node.store.matching import KeyMatch, parse_key


@pytest.mark.parametrize(
    ("value", "vr", "kind"),
    [
        ("", "LO", "universal"),
        (None, "DA", "universal"),
        ("*", "PN", "universal"),
        ("DOE^JOHN", "PN", "single"),
        ("DOE*", "PN", "wildcard"),
        ("20200101-20201231", "DA", "range"),
        ("1.2.3*", "UI", "single"),  # no wildcards in UIDs
        (MultiValue(str, ["1.2.3", "1.2.4"]), "UI", "list"),
        (MultiValue(str, ["CT", "SEG"]), "CS", "list"),
    ],
)
def test_each_kind_of_key_is_recognised(value: object, vr: str, kind: str) -> None:
    assert parse_key(value, vr).kind == kind


def test_person_names_match_case_insensitively_other_values_exactly() -> None:
    assert parse_key(PersonName("doe^john"), "PN").accepts("DOE^JOHN")
    assert parse_key("do?^*", "PN").accepts("Doe^John")
    assert not parse_key("abc*", "LO").accepts("ABCD")
    assert parse_key("ABC*", "LO").accepts("ABCD")
    assert not parse_key("ABC", "LO").accepts("ABCD")  # single value: the whole value


def test_wildcards_take_sql_and_regex_characters_literally() -> None:
    match = parse_key("A_%.*", "LO")
    assert match.accepts("A_%.xyz") and not match.accepts("AB%.xyz") and not match.accepts("A_%Xxyz")


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("20200101-20201231", "20200615", True),
        ("20200101-20201231", "20210101", False),
        ("20200101-", "20991231", True),
        ("-20200101", "20200101", True),
        ("-20200101", "20200102", False),
        ("20200101-20201231", "", False),  # an unknown date is in no range
        ("120000-130000", "1230", True),  # TM: a shorter value compares on what it has
    ],
)
def test_ranges_include_their_ends(key: str, value: str, accepted: bool) -> None:
    assert parse_key(key, "DA" if len(key) > 14 or key.startswith(("2", "-2")) else "TM").accepts(value) is accepted


def test_a_list_accepts_any_of_its_values() -> None:
    match = parse_key(MultiValue(str, ["CT", "SEG"]), "CS")
    assert match == KeyMatch("list", ("CT", "SEG")) and match.accepts("SEG") and not match.accepts("SR")
