"""Compare and derive DICOM files at the byte level."""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid


def dataset_bytes(path: Path) -> bytes:
    """The encoded data set of a Part 10 file: everything after the file meta group, untouched."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM", f"{path} is not a Part 10 file"
    # (0002,0000) UL, explicit VR little endian: tag 4 + VR 2 + length 2 + value 4
    assert data[132:136] == b"\x02\x00\x00\x00"
    group_length = struct.unpack("<I", data[140:144])[0]
    return data[144 + group_length :]


def copy_with_new_uid(source: Path, target: Path, **changes: object) -> str:
    """Write a copy of `source` as a new instance (new SOP Instance UID), optionally changing attributes."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.save_as(target)
    return ds.SOPInstanceUID
