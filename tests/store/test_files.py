"""The file header the SCP writes before each received data set."""

from __future__ import annotations

import pytest
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta

from dicom_node.store.files import encode_file_header, part10_header

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
