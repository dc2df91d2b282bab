"""Secondary-capture key slices: which slices, what they show, and that they are valid DICOM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.output.results import ResultFiles, write_results
from dicom_node.output.uids import AlgorithmId
from dicom_node.output.secondary_capture import key_slices, render_slice
from dicom_node.output.seg import OPACITY, RIGHT_LUNG, segment_masks
from dicom_node.output.sources import read_source_images
from dicom_node.pipelines.covid19.pipeline import PipelineResult

from .dicom_validation import dciodvfy_errors

ALGORITHM = ("dicom-node-covid19", "0.1.0")


@pytest.fixture(scope="module")
def written(phantom_with_gap_result: PipelineResult, tmp_path_factory: pytest.TempPathFactory) -> ResultFiles:
    return write_results(phantom_with_gap_result, tmp_path_factory.mktemp("sc"), AlgorithmId(*ALGORITHM), secondary_capture=True)


def test_key_slices_are_the_most_opaque_real_slices_and_mid_lung(phantom_with_gap_result: PipelineResult) -> None:
    volume = phantom_with_gap_result.volume
    lungs = phantom_with_gap_result.lung_labels > 0
    sources = read_source_images(volume)
    with_lung = [z for z in sources.z_indices if lungs[z].any()]
    interpolated = volume.sop_instance_uids.index(None)
    assert lungs[interpolated].any()
    first, second, third, fourth = with_lung[1], with_lung[-2], with_lung[2], with_lung[-3]
    opacity = np.zeros_like(phantom_with_gap_result.opacity_mask)
    # Most opacity on the interpolated slice, then on first, second, third, fourth.
    for z, pixels in ((interpolated, 500), (first, 400), (second, 300), (third, 200), (fourth, 100)):
        opacity[z].flat[np.flatnonzero(lungs[z])[:pixels]] = True
    result = dataclasses.replace(phantom_with_gap_result, opacity_mask=opacity)
    mid_lung = with_lung[len(with_lung) // 2]
    assert key_slices(result, sources, most_opacity=3) == sorted({first, second, third, mid_lung})


def test_render_draws_contours_in_segment_colours_inside_masks_only() -> None:
    hu = np.full((64, 64), -800, np.int16)
    masks = np.zeros((64, 64, 3), bool)
    masks[10:40, 10:40, 0] = True
    masks[20:30, 20:30, 2] = True
    rgb = render_slice(hu, masks, "legend")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert (rgb[10, 25] == RIGHT_LUNG.rgb).all() and (rgb[39, 25] == RIGHT_LUNG.rgb).all()
    assert (rgb[20, 25] == OPACITY.rgb).all()
    assert (rgb[25, 25] == rgb[25, 25, 0]).all(), "the inside of a mask stays grey"
    assert (rgb[50:, 50:] == rgb[50, 50, 0]).all(), "outside every mask the slice stays grey"


def test_captures_reference_their_slice_in_a_new_series(
    written: ResultFiles, phantom_with_gap_result: PipelineResult
) -> None:
    volume = phantom_with_gap_result.volume
    assert written.secondary_capture, "no key slice written"
    captures = [pydicom.dcmread(path) for path in written.secondary_capture]
    masks = segment_masks(phantom_with_gap_result)
    assert len({ds.SeriesInstanceUID for ds in captures}) == 1
    for ds in captures:
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert ds.StudyInstanceUID == volume.study_instance_uid
        assert ds.SeriesInstanceUID != volume.series_instance_uid
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        z = volume.sop_instance_uids.index(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)
        pixels = ds.pixel_array
        coloured = (pixels[..., 0] != pixels[..., 1]) | (pixels[..., 1] != pixels[..., 2])
        coloured[:40] = False  # the legend
        assert coloured.any()
        assert masks[z][coloured].any(axis=-1).all(), "contour drawn outside the masks of its slice"


def test_key_images_say_which_slice_they_show(written: ResultFiles, phantom_with_gap_result: PipelineResult) -> None:
    """Slice number counted from the head among the series' slices (interpolated ones have none) and z, as the
    viewer page labels its slices: in Image Comments and burned in under the legend."""
    volume = phantom_with_gap_result.volume
    real = [z for z, uid in enumerate(volume.sop_instance_uids) if uid is not None]
    for ds in (pydicom.dcmread(path) for path in written.secondary_capture):
        z = volume.sop_instance_uids.index(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)
        from_head = sum(1 for other in real if other > z) + 1
        position = volume.origin[0] + z * volume.spacing[0]
        assert ds.ImageComments == f"slice {from_head} of {len(real)} from the head, z {position:.1f} mm"


def test_captures_pass_dciodvfy_and_keep_their_uids(
    written: ResultFiles, phantom_with_gap_result: PipelineResult, tmp_path: Path
) -> None:
    for path in written.secondary_capture:
        assert dciodvfy_errors(path) == []
    again = write_results(phantom_with_gap_result, tmp_path, AlgorithmId(*ALGORITHM), secondary_capture=True)
    uids = [pydicom.dcmread(path).SOPInstanceUID for path in written.secondary_capture]
    assert [pydicom.dcmread(path).SOPInstanceUID for path in again.secondary_capture] == uids


def test_switching_captures_off_removes_those_of_a_previous_run(
    phantom_with_gap_result: PipelineResult, tmp_path: Path
) -> None:
    with_captures = write_results(phantom_with_gap_result, tmp_path, AlgorithmId(*ALGORITHM), secondary_capture=True)
    assert all(path.exists() for path in with_captures.secondary_capture) and with_captures.summary.exists()
    without = write_results(phantom_with_gap_result, tmp_path, AlgorithmId(*ALGORITHM), secondary_capture=False)
    assert without.secondary_capture == [] and not list(tmp_path.glob("sc-*.dcm"))
    assert without.summary is None and not (tmp_path / "summary.dcm").exists()
    assert without.dicom() == [without.seg, without.sr]


def test_summary_page_shows_the_table_the_classifier_and_the_legend(written: ResultFiles) -> None:
    page = pydicom.dcmread(written.summary)
    assert page.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and page.SeriesNumber == 9004
    assert page.PhotometricInterpretation == "RGB" and page.BurnedInAnnotation == "NO"
    pixels = page.pixel_array.astype(int)
    assert (pixels.max(axis=-1) > 200).mean() > 0.005, "no text on the page"
    for spec in (RIGHT_LUNG, OPACITY):  # the legend swatches in the segment colours
        assert (np.abs(pixels - spec.rgb).sum(axis=-1) == 0).sum() > 100, spec.label
    assert dciodvfy_errors(written.summary) == []


def test_a_long_legend_wraps_inside_the_key_image():
    """An unfit scan's headline names its flags; it must wrap, not run off the image's right edge."""
    hu, masks = np.full((256, 256), -1000, np.int16), np.zeros((256, 256, 3), bool)
    flags = "Sections thicker than the profile allows; Reconstruction kernel outside the profile; Noise above its limit"
    text_rows = []
    for legend in ("RA-950 1.20%", f"RA-950 5.61%, Perc15 -911 HU (!) not fit for densitometry: {flags}"):
        white = (render_slice(hu, masks, f"{legend}\nslice 40 of 80") > 200).all(axis=-1)  # text on the lung window's grey
        assert not white[:, -4:].any(), legend
        text_rows.append(int(np.flatnonzero(white.any(axis=1)).max()))
    assert text_rows[1] > text_rows[0] + 20, "the long headline takes more lines, the slice label still below it"
