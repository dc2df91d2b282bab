"""A series with an interpolated slice, and a patient with a name: what the SEG and SR do with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_node.output.results import ResultFiles, write_results
from dicom_node.output.uids import AlgorithmId
from dicom_node.output.seg import segment_masks
from dicom_node.pipelines.covid19.pipeline import PipelineResult

from .dicom_validation import dciodvfy_errors


@pytest.fixture(scope="module")
def written(phantom_with_gap_result: PipelineResult, tmp_path_factory: pytest.TempPathFactory) -> ResultFiles:
    return write_results(phantom_with_gap_result, tmp_path_factory.mktemp("gap"), AlgorithmId("dicom-node-covid19", "0.1.0"))


def test_interpolated_slice_is_left_out_and_real_slices_keep_their_masks(
    written: ResultFiles, phantom_with_gap_result: PipelineResult
) -> None:
    volume = phantom_with_gap_result.volume
    real = [z for z, uid in enumerate(volume.sop_instance_uids) if uid is not None]
    seg = hd.seg.segread(written.seg)
    referenced = {
        frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
    }
    assert referenced <= {uid for uid in volume.sop_instance_uids if uid is not None}
    read_back = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[volume.sop_instance_uids[z] for z in real],
        segment_numbers=[1, 2, 3],
        assert_missing_frames_are_empty=True,
        dtype=bool,
    )
    expected = segment_masks(phantom_with_gap_result)[real]
    assert expected[..., 2].any()
    np.testing.assert_array_equal(read_back, expected)


def test_patient_name_present_in_the_source_is_carried(written: ResultFiles, phantom_with_gap_result: PipelineResult) -> None:
    source = pydicom.dcmread(phantom_with_gap_result.volume.source_files[0], stop_before_pixels=True)
    for path in (written.seg, written.sr):
        ds = pydicom.dcmread(path)
        assert ds.PatientName == source.PatientName != ""
        assert ds.PatientID == source.PatientID


def test_gap_series_objects_pass_dciodvfy(written: ResultFiles) -> None:
    assert dciodvfy_errors(Path(written.seg)) == []
    assert dciodvfy_errors(Path(written.sr)) == []


def test_series_without_opacity_gives_an_empty_opacity_segment(
    phantom_with_gap_result: PipelineResult, tmp_path: Path
) -> None:
    clear = dataclasses.replace(
        phantom_with_gap_result, opacity_mask=np.zeros_like(phantom_with_gap_result.opacity_mask)
    )
    files = write_results(clear, tmp_path, AlgorithmId("dicom-node-covid19", "0.1.0"))
    seg = hd.seg.segread(files.seg)
    assert seg.number_of_segments == 3
    frame_segments = {frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber for frame in seg.PerFrameFunctionalGroupsSequence}
    assert frame_segments == {1, 2}
    sr = hd.sr.srread(files.sr)
    referenced = sorted(
        group.referenced_segment[0].referenced_segment_numbers[0]
        for group in sr.content.get_volumetric_roi_measurement_groups()
    )
    assert referenced == [1, 2, 3]
    assert dciodvfy_errors(files.seg) == [] and dciodvfy_errors(files.sr) == []
