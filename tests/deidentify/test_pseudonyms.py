"""The node's key, the keyed mapping, and the table that keeps it for re-identification."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pydicom
import pytest

from dicom_node.config import DeidentificationProfile, Destination
from dicom_node.deidentify.copies import DeidentifiedCopies
from dicom_node.deidentify.pseudonyms import KEY_FILE, KeyFileError, Pseudonyms, node_key
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.pseudonyms import PseudonymStore
from tests.node_process import shared_series


def test_the_key_is_created_once_private_and_refused_when_others_may_read_it(tmp_path: Path) -> None:
    key = node_key(tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert node_key(tmp_path) == key and len(key) == 32
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        node_key(tmp_path)


def test_mappings_are_repeatable_keyed_and_valid() -> None:
    one, same, other = Pseudonyms(b"a" * 32), Pseudonyms(b"a" * 32), Pseudonyms(b"b" * 32)
    uid = "1.2.840.113619.2.55.3.1234"
    assert one.uid(uid) == same.uid(uid) != other.uid(uid)
    assert one.uid(uid).startswith("2.25.") and len(one.uid(uid)) <= 64
    assert one.patient_id("P1", "") == same.patient_id("P1", "") != one.patient_id("P1", "OTHER HOSPITAL")
    assert len(one.accession("ACC123")) <= 16 and one.accession("") == ""
    days = {one.date_shift_days("P1", "", 3650) for _ in range(3)}
    assert len(days) == 1 and 1 <= days.pop() <= 3650
    assert {p.kind for p in one.issued.values()} == {"uid", "patient_id", "accession", "date_shift_days"}


def test_the_table_keeps_each_mapping_once_and_answers_reidentification(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    store = PseudonymStore(make_sessionmaker(engine))
    pseudonyms = Pseudonyms(b"a" * 32)
    patient = pseudonyms.patient_id("P1", "")
    pseudonyms.date_shift_days("P1", "", 100)
    uid = pseudonyms.uid("1.2.3")
    assert store.record(pseudonyms.issued.values()) == 3
    assert store.record(pseudonyms.issued.values()) == 0
    assert {(p.kind, p.original) for p in store.reidentify(patient)} == {("patient_id", "P1"), ("date_shift_days", "P1")}
    assert [p.original for p in store.reidentify(uid)] == ["1.2.3"]
    assert store.reidentify("2.25.1") == []
    engine.dispose()


def test_a_copy_is_the_same_bytes_every_time_and_the_stored_file_is_untouched(tmp_path: Path) -> None:
    """A retry (or another process after a crash) sends exactly what the first attempt sent."""
    upgrade(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    copies = DeidentifiedCopies(tmp_path, make_sessionmaker(engine))
    source = next(shared_series("lung-pet-ct-dx", "A0002-B40f").glob("*.dcm"))
    before = source.read_bytes()
    dest = Destination(name="R", ae_title="R", host="127.0.0.1", port=104, deidentification=DeidentificationProfile(enabled=True))
    first = copies.make(dest, source, 1)
    again = copies.make(dest, source, 1)
    assert again.path.read_bytes() == first.path.read_bytes() and source.read_bytes() == before
    assert again.pseudonyms == first.pseudonyms and copies.record([first, again]) == len(first.pseudonyms)
    assert pydicom.dcmread(copies.dir / "1.dcm").PatientIdentityRemoved == "YES"
    copies.remove(copies.dir / "1.dcm")
    assert not (copies.dir / "1.dcm").exists()
    engine.dispose()
