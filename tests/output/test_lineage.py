"""Results follow their input: the same input gives the same UIDs, other input new ones; a result names the one it
replaces (SR Predecessor Documents Sequence, summary page, JSON) and says when its input may be incomplete; the
rejection note that withdraws replaced objects is a valid Key Object Selection document."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pydicom
import pytest

from pydicom.uid import ImplicitVRLittleEndian

from dicom_node.output.inputs import JobInput, Predecessor, content_digest
from dicom_node.output.rejection import REJECTED_FOR_QUALITY_REASONS, write_rejection_note
from dicom_node.output.results import ResultFiles, write_results
from dicom_node.output.uids import AlgorithmId, input_digest
from dicom_node.pipelines.covid19.pipeline import PipelineResult

from tests.node_process import shared_series

from .dicom_validation import dciodvfy_errors

ALGORITHM = ("dicom-node-covid19", "0.1.0")
FIRST = input_digest([("1.2.3.1", "aa"), ("1.2.3.2", "bb")])
CHANGED = input_digest([("1.2.3.1", "aa"), ("1.2.3.2", "cc")])  # one slice replaced


def uids(files: ResultFiles) -> list[tuple[str, str]]:
    return [(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in files.dicom())]


@pytest.fixture(scope="module")
def first(phantom_with_gap_result: PipelineResult, tmp_path_factory: pytest.TempPathFactory) -> ResultFiles:
    return write_results(phantom_with_gap_result, tmp_path_factory.mktemp("first"), AlgorithmId(*ALGORITHM), job_input=JobInput(FIRST, 11))


@pytest.fixture(scope="module")
def replacing(first: ResultFiles, phantom_with_gap_result: PipelineResult, tmp_path_factory: pytest.TempPathFactory) -> ResultFiles:
    job_input = JobInput(CHANGED, 11, ("not completed by a normal release within 3600 s",), Predecessor(first.sr, datetime(2026, 1, 2, 3, 4)))
    return write_results(phantom_with_gap_result, tmp_path_factory.mktemp("replacing"), AlgorithmId(*ALGORITHM), job_input=job_input)


def test_the_same_input_gives_the_same_uids_and_other_input_new_ones(
    first: ResultFiles, replacing: ResultFiles, phantom_with_gap_result: PipelineResult, tmp_path: Path
) -> None:
    again = write_results(phantom_with_gap_result, tmp_path, AlgorithmId(*ALGORITHM), job_input=JobInput(FIRST, 11))
    assert uids(again) == uids(first)
    before, after = uids(first), uids(replacing)
    assert len(before) == len(after) and not {uid for pair in before for uid in pair} & {uid for pair in after for uid in pair}


def test_the_sr_names_its_predecessor_and_says_why_its_input_may_be_incomplete(first: ResultFiles, replacing: ResultFiles) -> None:
    old, sr = pydicom.dcmread(first.sr), pydicom.dcmread(replacing.sr)
    [study] = sr.PredecessorDocumentsSequence
    [series] = study.ReferencedSeriesSequence
    [document] = series.ReferencedSOPSequence
    assert (study.StudyInstanceUID, series.SeriesInstanceUID, document.ReferencedSOPInstanceUID) == (
        old.StudyInstanceUID, old.SeriesInstanceUID, old.SOPInstanceUID
    )
    comments = [str(item.TextValue) for item in sr.ContentSequence if item.ValueType == "TEXT"]
    assert "Input possibly incomplete: not completed by a normal release within 3600 s; 1 slice(s) filled in by interpolation" in comments
    assert "Replaces the result of 2026-01-02 03:04 UTC" in comments
    assert "PredecessorDocumentsSequence" not in old
    assert dciodvfy_errors(replacing.sr) == []


def test_the_json_says_the_same(first: ResultFiles, replacing: ResultFiles) -> None:
    document = json.loads(replacing.json.read_text())["input"]
    assert document["digest"] == CHANGED and document["instances"] == 11 and document["possibly_incomplete"] is True
    assert document["replaces"] == {"sop_instance_uid": str(pydicom.dcmread(first.sr).SOPInstanceUID), "created": "2026-01-02T03:04:00Z"}
    assert json.loads(first.json.read_text())["input"]["replaces"] is None


def test_the_rejection_note_is_a_valid_kos_listing_the_withdrawn_objects(first: ResultFiles, tmp_path: Path) -> None:
    withdrawn = first.dicom()
    note = write_rejection_note(withdrawn, tmp_path, "PACS", "1.2.3", AlgorithmId(*ALGORITHM), CHANGED, "replaced by the result of job 2")
    kos = pydicom.dcmread(note)
    concept = kos.ConceptNameCodeSequence[0]
    assert (concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning) == REJECTED_FOR_QUALITY_REASONS
    listed = {
        ref.ReferencedSOPInstanceUID
        for study in kos.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert listed == {uid for _, uid in uids(first)}
    assert kos.StudyInstanceUID == pydicom.dcmread(first.sr).StudyInstanceUID
    assert dciodvfy_errors(note) == []
    again = write_rejection_note(withdrawn, tmp_path / "again", "PACS", "1.2.3", AlgorithmId(*ALGORITHM), CHANGED, "again")
    assert pydicom.dcmread(again).SOPInstanceUID == kos.SOPInstanceUID, "derived, not drawn at random"


def test_the_content_digest_follows_values_not_their_encoding(tmp_path: Path) -> None:
    source = sorted(shared_series("lung-pet-ct-dx", "A0002-B40f").glob("*.dcm"))[0]
    other_meta = pydicom.dcmread(source)
    other_meta.file_meta.ImplementationClassUID = "1.2.3.4"  # another writer's file meta
    other_meta.save_as(tmp_path / "meta.dcm")
    implicit = pydicom.dcmread(source)
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # another transfer syntax, the same values
    implicit.save_as(tmp_path / "implicit.dcm")
    changed = pydicom.dcmread(source)
    changed.PixelData = bytes(len(changed.PixelData))
    changed.save_as(tmp_path / "changed.dcm")
    digests = {name: content_digest(path) for name, path in {"source": source, **{p.stem: p for p in tmp_path.iterdir()}}.items()}
    assert digests["source"] == digests["meta"] == digests["implicit"]
    assert digests["changed"] != digests["source"]
