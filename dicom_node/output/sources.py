"""The source slices' headers, made fit to be copied into derived objects.

highdicom copies patient and study attributes from the source images into the
SEG and SR and reads several Type 2 attributes unconditionally.  De-identified
studies often lack them (COVID-CT-MD's P001 has no PatientName), so the headers
are completed with *empty* values: what the source carries is kept, what it
lacks stays empty, and no identity is ever made up.  This happens on the
in-memory copies read here; the received files are never modified.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset

from dicom_node.output.uids import derived_frame_of_reference
from dicom_node.pipeline.volume import CtVolume

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")

# Type 2 attributes of the Patient and General Study modules that highdicom
# reads from the first source image (keyword -> empty value).
_EMPTY_TYPE2 = {
    "PatientName": "",
    "PatientID": "",
    "PatientBirthDate": "",
    "PatientSex": "",
    "StudyDate": "",
    "StudyTime": "",
    "ReferringPhysicianName": "",
    "StudyID": "",
    "AccessionNumber": "",
}


@dataclass(frozen=True)
class SourceImages:
    """Headers of the volume's slices that came from a file, with their z index.

    Slices the loader filled in by interpolation have no source image; derived
    objects leave them out, since no PACS image exists to attach them to.
    `warnings` says what is wrong with the source's identifiers (empty: nothing); `input_digest`
    the digest of the exact input (`uids.input_digest`), which the results' UIDs follow.
    """

    z_indices: list[int]
    headers: list[Dataset]
    warnings: list[str] = field(default_factory=list)
    input_digest: str = ""

    @property
    def first(self) -> Dataset:
        return self.headers[0]


def read_source_images(volume: CtVolume, input_digest: str = "") -> SourceImages:
    """The headers of the volume's source files in z order, fit to be copied into derived objects.

    The headers are the loader's (pixel data never read), or read again for a
    volume that does not carry them; each is checked against the SOP Instance
    UID the loader recorded.  They are copies: missing Type 2 attributes are
    added empty, and a missing Frame of Reference UID is replaced by one derived
    from the series (`uids.derived_frame_of_reference`), on the copies only.
    UIDs that are not valid DICOM UIDs are kept exactly (results must reference
    the source the PACS holds) and named in `warnings`.
    """
    z_indices, headers = [], []
    for z, (path, sop_instance_uid) in enumerate(zip(volume.source_files, volume.sop_instance_uids)):
        if path is None:
            continue
        loaded = volume.source_headers[z] if volume.source_headers else None
        header = loaded if loaded is not None else pydicom.dcmread(path, stop_before_pixels=True)
        if header.SOPInstanceUID != sop_instance_uid:
            raise ValueError(
                f"{path} now holds SOP Instance {header.SOPInstanceUID}, "
                f"not the {sop_instance_uid} the volume was built from"
            )
        z_indices.append(z)
        headers.append(header)
    if not headers:
        raise ValueError(f"volume of series {volume.series_instance_uid} has no source files")
    warnings = uid_problems(headers)
    frame_of_reference = str(headers[0].get("FrameOfReferenceUID") or "") or derived_frame_of_reference(
        str(headers[0].SeriesInstanceUID)
    )
    return SourceImages(z_indices, [_fit_copy(header, frame_of_reference) for header in headers], warnings, input_digest)


def uid_problems(headers: Sequence[Dataset]) -> list[str]:
    """What is wrong with the series' identifying UIDs, in words; empty if nothing is."""
    first = headers[0]
    problems = []
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
        value = str(first.get(keyword) or "")
        if not is_valid_uid(value):
            problems.append(f"{keyword} {value!r} is not a valid DICOM UID")
    if not str(first.get("FrameOfReferenceUID") or ""):
        derived = derived_frame_of_reference(str(first.SeriesInstanceUID))
        problems.append(f"FrameOfReferenceUID is missing or empty; the results use {derived}, derived from the series")
    elif not is_valid_uid(str(first.FrameOfReferenceUID)):
        problems.append(f"FrameOfReferenceUID {str(first.FrameOfReferenceUID)!r} is not a valid DICOM UID")
    invalid = [str(h.SOPInstanceUID) for h in headers if not is_valid_uid(str(h.SOPInstanceUID))]
    if invalid:
        problems.append(f"{len(invalid)} of {len(headers)} SOPInstanceUIDs are not valid DICOM UIDs, e.g. {invalid[0]!r}")
    return problems


def is_valid_uid(value: str) -> bool:
    """PS3.5 9.1: at most 64 characters, dot-separated numbers without leading zeros."""
    return len(value) <= 64 and _UID.fullmatch(value) is not None


def _fit_copy(header: Dataset, frame_of_reference: str) -> Dataset:
    """A copy of the header with the missing Type 2 attributes empty and a frame of reference.

    The copy shares the header's elements, so what it changes is added as new
    elements (an existing empty Frame of Reference UID is replaced, not edited).
    """
    # A new mapping of the same element objects (get_item leaves raw elements unparsed): a
    # tenth of the time of Dataset.update, which sets the elements one by one.
    copy = Dataset({tag: header.get_item(tag) for tag in header.keys()})
    copy.file_meta = header.file_meta
    for keyword, empty in _EMPTY_TYPE2.items():
        if keyword not in copy:
            setattr(copy, keyword, empty)
    if not copy.get("FrameOfReferenceUID"):
        copy.pop("FrameOfReferenceUID", None)
        copy.FrameOfReferenceUID = frame_of_reference
    return copy
