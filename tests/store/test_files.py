"""The files the SCP writes: the header before each received data set, and how a new instance's file is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta

from dicom_node.store.files import create_durably, encode_file_header, part10_header

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the odd UIDs on purpose below
@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax"),
    [
        (CT, "1.2.3.4.55", "1.2.840.10008.1.2.1"),  # even lengths
        (CT, "1.2.3.4.5", "1.2.840.10008.1.2"),  # odd: padded with NUL
        ("1.2.x" * 30, "9" * 65, "1.2.840.10008.1.2.4.50"),  # letters, longer than 64: stored as received
        ("1.2.\u00e9", "1.2", "1.2.840.10008.1.2"),  # not ASCII: pydicom's way
    ],
)
def test_part10_header_is_what_pydicom_writes_for_pynetdicoms_file_meta(sop_class: str, sop_instance: str, syntax: str) -> None:
    expected = encode_file_header(create_file_meta(sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance), transfer_syntax=UID(syntax)))
    assert part10_header(sop_class, sop_instance, syntax) == expected


def test_a_new_file_is_created_under_its_name_and_never_over_another(tmp_path: Path) -> None:
    path = tmp_path / "instances" / "1.2" / "1.2.3" / "1.2.3.4.dcm"
    assert create_durably(path, b"head", memoryview(b"data")) == 8
    assert path.read_bytes() == b"headdata"
    with pytest.raises(FileExistsError):
        create_durably(path, b"other")
    assert path.read_bytes() == b"headdata"


def test_a_failed_write_leaves_the_new_name_holding_nothing(tmp_path: Path) -> None:
    """Truncated rather than removed: another writer may have renamed a complete copy over the name meanwhile."""
    path = tmp_path / "new.dcm"
    with pytest.raises(TypeError):
        create_durably(path, b"x" * 100_000, object())  # type: ignore[arg-type]  # the write fails midway
    assert path.exists() and path.stat().st_size == 0
