"""Every storage class is accepted, stored and indexed, and none starts a job unless the pipeline selects it; a
called AE can refuse classes (logged by name); a re-sent study gets one line that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.dcmtk import storescu
from tests.node.index import jobs, query

STUDY = generate_uid()
CR = "1.2.840.10008.5.1.4.1.1.1"
CLASSES = {  # name -> (SOP Class UID, Modality)
    "CR": (CR, "CR"),
    "DX": ("1.2.840.10008.5.1.4.1.1.1.1", "DX"),
    "MG": ("1.2.840.10008.5.1.4.1.1.1.2", "MG"),
    "US": ("1.2.840.10008.5.1.4.1.1.6.1", "US"),
    "RTDOSE": ("1.2.840.10008.5.1.4.1.1.481.2", "RTDOSE"),
    "PDF": ("1.2.840.10008.5.1.4.1.1.104.1", "DOC"),
    "KO": ("1.2.840.10008.5.1.4.1.1.88.59", "KO"),
}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def small_object(folder: Path, name: str, referenced: Dataset | None = None) -> Dataset:
    """A small object of the class `name` with the modules its IOD requires, written to folder/<name>.dcm."""
    sop_class, modality = CLASSES[name]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Classes^Test", "CLASSES", "", "O"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = STUDY, "20260101", "120000", "1", "", ""
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality, ds.InstanceNumber = generate_uid(), 1, modality, 1
    ds.Manufacturer = "test"
    if name in ("CR", "DX", "MG", "US", "RTDOSE"):
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.arange(64, dtype=np.uint16).tobytes()
    if name in ("DX", "MG"):
        ds.ImageType, ds.PresentationIntentType, ds.ImageLaterality = ["ORIGINAL", "PRIMARY"], "FOR PRESENTATION", "L"
    if name == "RTDOSE":
        ds.FrameOfReferenceUID, ds.NumberOfFrames, ds.GridFrameOffsetVector = generate_uid(), 1, [0]
        ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = [0, 0, 0], [1, 0, 0, 0, 1, 0], [1, 1]
        ds.DoseUnits, ds.DoseType, ds.DoseSummationType, ds.DoseGridScaling = "GY", "PHYSICAL", "PLAN", 0.001
    if name == "PDF":
        ds.BurnedInAnnotation, ds.DocumentTitle, ds.MIMETypeOfEncapsulatedDocument = "NO", "Dose report", "application/pdf"
        ds.ConceptNameCodeSequence = []
        ds.EncapsulatedDocument = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    if name == "KO":
        assert referenced is not None
        ds.ContentDate, ds.ContentTime, ds.ValueType, ds.ContinuityOfContent = "20260101", "120000", "CONTAINER", "SEPARATE"
        ds.ConceptNameCodeSequence = [_code("113000", "DCM", "Of Interest")]
        template = Dataset()
        template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
        ds.ContentTemplateSequence = [template]
        reference = Dataset()
        reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = referenced.SOPClassUID, referenced.SOPInstanceUID
        item = Dataset()
        item.RelationshipType, item.ValueType, item.ReferencedSOPSequence = "CONTAINS", "IMAGE", [reference]
        ds.ContentSequence = [item]
        series = Dataset()
        series.SeriesInstanceUID, series.ReferencedSOPSequence = referenced.SeriesInstanceUID, [reference]
        study = Dataset()
        study.StudyInstanceUID, study.ReferencedSeriesSequence = STUDY, [series]
        ds.CurrentRequestedProcedureEvidenceSequence = [study]
        ds.ReferencedPerformedProcedureStepSequence = []
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / f"{name}.dcm", enforce_file_format=True)
    return ds


@pytest.fixture
def objects(tmp_path: Path) -> dict[str, Dataset]:
    made = {name: small_object(tmp_path / "study", name) for name in CLASSES if name != "KO"}
    made["KO"] = small_object(tmp_path / "study", "KO", referenced=made["CR"])
    return made


def test_every_storage_class_is_stored_none_is_processed_and_a_called_ae_refuses_what_it_is_told_to(
    node_factory, objects: dict[str, Dataset], tmp_path: Path
) -> None:
    called = [{"ae_title": "CLARA"}, {"ae_title": "NOCR", "refused_sop_classes": [CR]}, {"ae_title": "ONLYCR", "sop_classes": [CR]}]
    node = node_factory(ae="", settings={"dicom": {"called_aes": called}, "jobs": {"settle_seconds": 0.0}}).start()  # no --ae: these AEs
    study = tmp_path / "study"
    refused = storescu(node.port, study / "CR.dcm", study / "US.dcm", ae="NOCR", compressed=False, extra=("-nh",))
    assert "No presentation context" in refused.stdout + refused.stderr
    only = storescu(node.port, study / "CR.dcm", study / "US.dcm", ae="ONLYCR", compressed=False, extra=("-nh",))
    assert "No presentation context" in only.stdout + only.stderr
    stored = {uid for (uid,) in query(node.data_dir, "SELECT sop_instance_uid FROM instance")}
    assert stored == {objects["US"].SOPInstanceUID, objects["CR"].SOPInstanceUID}

    sent = storescu(node.port, study, compressed=False)
    assert sent.returncode == 0 and "No presentation context" not in sent.stderr, sent.stderr
    stored = {uid: (cls, path) for uid, cls, path in query(node.data_dir, "SELECT sop_instance_uid, sop_class_uid, path FROM instance")}
    assert {uid: cls for uid, (cls, _) in stored.items()} == {ds.SOPInstanceUID: ds.SOPClassUID for ds in objects.values()}
    assert all((node.data_dir / path).is_file() for _, path in stored.values())
    received = query(node.data_dir, "SELECT series_instance_uid, last_received_at, pending FROM series")
    assert len(received) == len(objects) and all(at is not None and not pending for _, at, pending in received)
    # The released associations have run the scheduler: nothing was queued, and nothing is.
    assert jobs(node.data_dir) == [] and json.loads(node.cli("jobs", "list", "--json").stdout) == []

    node.stop()
    log = node.log()
    assert "refused Computed Radiography Image Storage (not accepted by NOCR)" in log
    assert "Ultrasound Image Storage (not accepted by ONLYCR)" in log  # among the other classes storescu proposes
    # The last association re-sent the CR and the US (stored before): one line per series, none per instance at INFO.
    resent = [line for line in log.splitlines() if "re-sent 1 instance(s) already stored" in line]
    assert len(resent) == 2 and all("stored only (its SOP classes start no job)" in line for line in resent), resent
    assert "INFO" not in "".join(line for line in log.splitlines() if "is a duplicate" in line)
