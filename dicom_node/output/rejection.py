"""The IHE IOCM rejection note that withdraws results a newer result replaces.

New content gets new UIDs (`uids.derived_uid`), so a PACS keeps an earlier result
beside the newer one. IHE Imaging Object Change Management (IOCM) withdraws
objects the standard way: a Key Object Selection document titled "Rejected for
Quality Reasons" (DCM 113001, PS3.16 CID 7011) that lists them in its Current
Requested Procedure Evidence Sequence and its content. A PACS that implements
IOCM hides or deletes them; one that does not keeps the note as one more object,
which is why it is only sent to destinations configured to accept it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from dicom_node.output.results import save_dicom
from dicom_node.output.uids import MANUFACTURER, AlgorithmId, derived_uid

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
REJECTED_FOR_QUALITY_REASONS = ("113001", "DCM", "Rejected for Quality Reasons")
REJECTION_SERIES_NUMBER = 9009
REJECTION_DESCRIPTION = "AI results withdrawn: replaced by a newer result"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_PATIENT_AND_STUDY = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)


def build_rejection_note(
    rejected: Sequence[Dataset], series_instance_uid: str, sop_instance_uid: str, created: datetime, reason: str
) -> Dataset:
    """A KOS "Rejected for Quality Reasons" listing `rejected` (headers of the withdrawn objects, all of one study:
    the results of one source series); `reason` says in words why, as the document's Key Object Description."""
    if not rejected:
        raise ValueError("a rejection note needs at least one rejected object")
    first = rejected[0]
    studies = {str(ds.StudyInstanceUID) for ds in rejected}
    if len(studies) != 1:
        raise ValueError(f"the rejected objects belong to {len(studies)} studies; a rejection note covers one")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = KEY_OBJECT_SELECTION
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in _PATIENT_AND_STUDY:
        if keyword in first:
            ds.add(copy.deepcopy(first[keyword]))
        elif keyword not in ("SpecificCharacterSet", "IssuerOfPatientID"):
            setattr(ds, keyword, "")  # Type 2: present, empty when the source has none
    date, time = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    ds.SOPClassUID = KEY_OBJECT_SELECTION
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.Modality = "KO"
    ds.SeriesInstanceUID = series_instance_uid
    ds.SeriesNumber = REJECTION_SERIES_NUMBER
    ds.SeriesDescription = REJECTION_DESCRIPTION
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = MANUFACTURER
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    ds.CurrentRequestedProcedureEvidenceSequence = [_evidence(first.StudyInstanceUID, rejected)]
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(*REJECTED_FOR_QUALITY_REASONS)]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = [template]
    description = Dataset()
    description.RelationshipType = "CONTAINS"
    description.ValueType = "TEXT"
    description.ConceptNameCodeSequence = [_code("113012", "DCM", "Key Object Description")]
    description.TextValue = reason[:1024]
    ds.ContentSequence = [description, *(_content_item(obj) for obj in rejected)]
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _sop_reference(obj: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = obj.SOPClassUID
    item.ReferencedSOPInstanceUID = obj.SOPInstanceUID
    return item


def _evidence(study_uid: str, rejected: Sequence[Dataset]) -> Dataset:
    by_series: dict[str, list[Dataset]] = {}
    for obj in rejected:
        by_series.setdefault(str(obj.SeriesInstanceUID), []).append(obj)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    series_items = []
    for series_uid, objects in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = [_sop_reference(obj) for obj in objects]
        series_items.append(series)
    study.ReferencedSeriesSequence = series_items
    return study


def _content_item(obj: Dataset) -> Dataset:
    """TID 2010: an SR document is referenced as COMPOSITE, anything with pixels (SEG, secondary capture) as IMAGE."""
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "COMPOSITE" if str(obj.SOPClassUID).startswith(_SR_CLASS_PREFIX) else "IMAGE"
    item.ReferencedSOPSequence = [_sop_reference(obj)]
    return item


def write_rejection_note(
    rejected: Sequence[Path], out_dir: Path, destination: str, source_series_uid: str, algorithm: AlgorithmId, input_digest: str, reason: str
) -> Path:
    """Write the rejection note withdrawing the objects stored at `rejected` from `destination` into the newer job's
    result folder; its UIDs follow the newer result's input like the result's own, and name the destination (each
    destination may have received other objects)."""
    headers = [dcmread(path, stop_before_pixels=True) for path in rejected]
    note = build_rejection_note(
        headers,
        derived_uid(source_series_uid, algorithm, "rejection-note", "series", inputs=input_digest),
        derived_uid(source_series_uid, algorithm, "rejection-note", "instance", destination, inputs=input_digest),
        datetime.now(),
        reason,
    )
    return save_dicom(note, out_dir / f"rejection-{_SAFE_NAME.sub('_', destination)}.dcm")
