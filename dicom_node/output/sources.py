"""The source slices' headers, made fit to be copied into derived objects.

highdicom copies patient and study attributes from the source images into the
SEG and SR and reads several Type 2 attributes unconditionally.  De-identified
studies often lack them (COVID-CT-MD's P001 has no PatientName), so the headers
are completed with *empty* values: what the source carries is kept, what it
lacks stays empty, and no identity is ever made up.  This happens on the
in-memory copies read here; the received files are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from dicom_node.pipeline.volume import CtVolume

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
    """

    z_indices: list[int]
    headers: list[Dataset]

    @property
    def first(self) -> Dataset:
        return self.headers[0]


def read_source_images(volume: CtVolume) -> SourceImages:
    """The headers of the volume's source files in z order, completed with empty Type 2 attributes.

    Pixel data is not read: highdicom only needs the geometry and identity of
    the source images, and skipping the (JPEG Lossless) pixel data keeps this
    fast.  Each header is checked against the SOP Instance UID the loader
    recorded, so a file replaced on disk since loading is caught here.
    """
    z_indices, headers = [], []
    for z, (path, sop_instance_uid) in enumerate(zip(volume.source_files, volume.sop_instance_uids)):
        if path is None:
            continue
        header = pydicom.dcmread(path, stop_before_pixels=True)
        if header.SOPInstanceUID != sop_instance_uid:
            raise ValueError(
                f"{path} now holds SOP Instance {header.SOPInstanceUID}, "
                f"not the {sop_instance_uid} the volume was built from"
            )
        z_indices.append(z)
        headers.append(with_empty_type2(header))
    if not headers:
        raise ValueError(f"volume of series {volume.series_instance_uid} has no source files")
    return SourceImages(z_indices, headers)


def with_empty_type2(header: Dataset) -> Dataset:
    """The header with every missing Type 2 patient/study attribute present and empty."""
    for keyword, empty in _EMPTY_TYPE2.items():
        if keyword not in header:
            setattr(header, keyword, empty)
    return header
