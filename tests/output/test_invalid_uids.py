"""A source series whose UIDs are not valid DICOM UIDs, and without a Frame of Reference UID.

Such series exist (hand-made exports, old gateways). The PACS files the results by
the source's UIDs as they are, so the results reference them exactly; the Frame of
Reference the SEG and key images need is derived; the job says what was wrong.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pydicom
import pytest

from dicom_node.output.results import ResultFiles, write_results
from dicom_node.output.uids import AlgorithmId, derived_frame_of_reference
from dicom_node.pipelines.covid19.pipeline import PipelineResult
from phantoms.chest import make_phantom, write_phantom_series
from dicom_node.pipeline.volume import load_series

from .conftest import result_from_masks

STUDY_UID = "1.2.826.0.1.3680043.2.1125.STUDY.7"
SERIES_UID = "1.2.826.0.1.3680043.2.1125.SERIES.7a"


@pytest.fixture(scope="module")
def invalid_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineResult, list[Path]]:
    phantom = make_phantom((96, 96, 24), 0.1, seed=5)
    files = write_phantom_series(phantom, tmp_path_factory.mktemp("invalid"))
    for number, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = STUDY_UID
        ds.SeriesInstanceUID = SERIES_UID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.IMG{number:03d}"
        ds.FrameOfReferenceUID = ""
        ds.save_as(path)
    volume = load_series(files)
    return result_from_masks(volume, phantom.lungs, phantom.opacity), files


@pytest.fixture(scope="module")
def written(invalid_source: tuple[PipelineResult, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> ResultFiles:
    result, _ = invalid_source
    return write_results(result, tmp_path_factory.mktemp("out"), AlgorithmId("dicom-node-covid19", "0.1.0"))


def test_the_warnings_name_what_is_wrong(written: ResultFiles) -> None:
    text = "\n".join(written.warnings)
    assert f"StudyInstanceUID {STUDY_UID!r} is not a valid DICOM UID" in text
    assert f"SeriesInstanceUID {SERIES_UID!r} is not a valid DICOM UID" in text
    assert "FrameOfReferenceUID is missing or empty" in text and derived_frame_of_reference(SERIES_UID) in text
    assert "24 of 24 SOPInstanceUIDs are not valid DICOM UIDs" in text
    assert json.loads(written.json.read_text())["warnings"] == written.warnings


def test_results_reference_the_source_exactly_in_a_derived_frame_of_reference(
    written: ResultFiles, invalid_source: tuple[PipelineResult, list[Path]]
) -> None:
    _, files = invalid_source
    source_uids = {pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in files}
    frame_of_reference = derived_frame_of_reference(SERIES_UID)
    seg, sr = pydicom.dcmread(written.seg), pydicom.dcmread(written.sr)
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == STUDY_UID
    assert seg.FrameOfReferenceUID == frame_of_reference
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == SERIES_UID
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} <= source_uids
    frame_sources = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID for f in seg.PerFrameFunctionalGroupsSequence}
    assert frame_sources <= source_uids
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == STUDY_UID
    sr_series = {s.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in s.ReferencedSOPSequence} for s in evidence.ReferencedSeriesSequence}
    assert sr_series[SERIES_UID] == source_uids
    for path in written.secondary_capture:
        capture = pydicom.dcmread(path)
        assert capture.StudyInstanceUID == STUDY_UID
        assert capture.SourceImageSequence[0].ReferencedSOPInstanceUID in source_uids


def test_no_warning_flood_when_pydicom_validation_is_left_to_the_node(
    invalid_source: tuple[PipelineResult, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With pydicom's own validation off, as the node sets it, writing the results logs and warns nothing."""
    result, _ = invalid_source
    modes = pydicom.config.settings.reading_validation_mode, pydicom.config.settings.writing_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
            warnings.simplefilter("always")
            files = write_results(result, tmp_path, AlgorithmId("dicom-node-covid19", "0.1.0"))
    finally:
        pydicom.config.settings.reading_validation_mode, pydicom.config.settings.writing_validation_mode = modes
    assert len(files.warnings) == 4
    assert [str(w.message) for w in caught if "UI" in str(w.message)] == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pydicom")] == []
