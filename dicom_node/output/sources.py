"""The source slices' headers, made fit to be copied into derived objects.

highdicom copies patient and study attributes from the source images into the
SEG and SR and reads several Type 2 attributes unconditionally.  De-identified
studies often lack them (COVID-CT-MD's P001 has no PatientName), so the headers
are completed with *empty* values: what the source carries is kept, what it
lacks stays empty, and no identity is ever made up.  This happens on the
in-memory copies read here; the received files are never modified.
"""

from __future__ import annotations

import pydicom
from pydicom.dataset import Dataset

from dicom_node.pipeline.volume import CtVolume

# Type 2 attributes of the Patient, General Study and General Series modules
# that highdicom reads from the first source image (keyword -> empty value).
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


def read_source_headers(volume: CtVolume) -> list[Dataset]:
    """One header per slice, in the volume's z order, completed with empty Type 2 attributes.

    Pixel data is not read: highdicom only needs the geometry and identity of
    the source images, and skipping the (JPEG Lossless) pixel data keeps this
    fast.  Each header is checked against the slice identity the loader
    recorded, so a file replaced on disk since loading is caught here.
    """
    headers = []
    for source in volume.slices:
        header = pydicom.dcmread(source.path, stop_before_pixels=True)
        if header.SOPInstanceUID != source.sop_instance_uid:
            raise ValueError(
                f"{source.path} now holds SOP Instance {header.SOPInstanceUID}, "
                f"not the {source.sop_instance_uid} the volume was built from"
            )
        headers.append(with_empty_type2(header))
    return headers


def with_empty_type2(header: Dataset) -> Dataset:
    """The header with every missing Type 2 patient/study attribute present and empty."""
    for keyword, empty in _EMPTY_TYPE2.items():
        if keyword not in header:
            setattr(header, keyword, empty)
    return header
