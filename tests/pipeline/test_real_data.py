"""The pipeline on real chest CT (../shared/data): plausibility and agreement with radiologists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipeline.lungs import AIRWAY_LUMEN_HU, airway_mask, body_mask, segment_lungs
from dicom_node.pipelines.covid19.opacity import slice_opacity_fractions
from dicom_node.pipeline.resample import to_model_grid
from dicom_node.pipeline.settings import SegmentationSettings
from tests.pipeline.conftest import DATA


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    positive, negative = scores[labels], scores[~labels]
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def outside_air(hu: np.ndarray) -> np.ndarray:
    """Per slice, the air connected to the image border: what surrounds the patient."""
    air = hu < -500
    inner = np.zeros_like(air)
    inner[:, 1:-1, 1:-1] = True
    seeds = air & ~inner
    structure = ndimage.generate_binary_structure(3, 1)
    structure[0] = structure[2] = False
    return ndimage.binary_propagation(seeds, structure=structure, mask=air)


@pytest.mark.parametrize("case", ["p001", "normal001"])
def test_lung_volumes_are_plausible_and_inside_the_body(case: str, request: pytest.FixtureRequest):
    result: PipelineResult = request.getfixturevalue(f"{case}_result")
    litres = result.measurements.lung_volume_ml["total"] / 1000.0
    assert 3.0 <= litres <= 8.0
    assert 0.35 <= result.measurements.lung_volume_ml["right"] / (litres * 1000.0) <= 0.65
    assert not (result.lung_labels.astype(bool) & outside_air(result.volume.hu)).any()


def test_covid_case_has_clearly_more_opacity_than_the_normal_case(p001_result: PipelineResult, normal001_result: PipelineResult):
    covid, normal = p001_result.measurements.opacity_percent["total"], normal001_result.measurements.opacity_percent["total"]
    assert normal < 0.5
    assert covid > normal + 1.0
    assert p001_result.classification.scores[1] > 0.5 > normal001_result.classification.scores[1]


def slice_labels_p001(result: PipelineResult) -> np.ndarray:
    """The radiologists' infected-slice labels on the volume's slices (InstanceNumber order, see below)."""
    infected = json.loads((DATA / "covid-ct-md" / "P001-slice-labels.json").read_text())["infected"]
    instance_numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in result.volume.source_files]
    return np.isin(np.argsort(np.argsort(instance_numbers)), infected)


def test_slice_opacity_agrees_with_the_radiologists_slice_labels(p001_result: PipelineResult):
    """The label file says "index i = i-th slice in ascending SliceLocation", but its lesions
    then fall on slices without any (e.g. the posterior right ground glass at SliceLocation
    -262 and -214 is labelled clean) and the AUC is 0.68; in InstanceNumber order (= descending
    SliceLocation for P001) labels and images agree. The test uses InstanceNumber order."""
    labels = slice_labels_p001(p001_result)
    fractions = slice_opacity_fractions(p001_result.opacity_mask, p001_result.lung_labels)
    assert labels.sum() == 80
    assert roc_auc(fractions, labels) >= 0.94  # issue 22's target (0.92 before the focal ground-glass seeds)


def test_slice_opacity_reaches_the_issue_target_auc(p001_result: PipelineResult):
    """0.947-0.949 until the growth went downhill only (issue 22): it no longer follows vessels out of the lesions
    into slices labelled clean."""
    labels = slice_labels_p001(p001_result)
    auc = roc_auc(slice_opacity_fractions(p001_result.opacity_mask, p001_result.lung_labels), labels)
    print(f"\nP001 slice AUC {auc:.3f}")
    assert auc >= 0.95


def test_normal_case_has_at_most_one_ml_of_opacity(normal001_result: PipelineResult):
    """A right hilar vessel's branching point counted as 3.4 ml before the tubular test; since the harmonisation and
    the 3 mm ground-glass opening it stays out without it (the test is off by default)."""
    assert normal001_result.measurements.opacity_volume_ml["total"] <= 1.0
    assert normal001_result.pattern is not None and normal001_result.pattern.zone_based_severity_score == 0


def test_two_reconstruction_kernels_give_the_same_lung_volume(
    a0002_b70f_result: PipelineResult, a0002_b40f_result: PipelineResult
):
    sharp, soft = a0002_b70f_result, a0002_b40f_result
    sharp_ml, soft_ml = sharp.measurements.lung_volume_ml["total"], soft.measurements.lung_volume_ml["total"]
    assert sharp_ml == pytest.approx(soft_ml, rel=0.05)
    # 30 slices of 8 mm from the liver dome to below the apices: not the whole lungs
    assert 2.0 <= sharp_ml / 1000.0 <= 8.0
    for result in (sharp, soft):
        assert not (result.lung_labels.astype(bool) & outside_air(result.volume.hu)).any()


def test_two_reconstruction_kernels_give_the_same_opacity_and_one_large_mass(
    a0002_b70f_result: PipelineResult, a0002_b40f_result: PipelineResult
):
    """A0002 (lung cancer): a mass of several centimetres in the right lower lobe. Both kernels
    must agree on PO, count the mass as high opacity and report it as one large lesion."""
    for result in (a0002_b70f_result, a0002_b40f_result):
        pattern = result.pattern
        assert pattern is not None
        assert pattern.largest_lesion_ml >= 30.0  # the mass, in one piece
        assert result.measurements.high_opacity_percent["right"] > 1.0  # mostly soft-tissue attenuation
    sharp, soft = (r.measurements.opacity_percent["total"] for r in (a0002_b70f_result, a0002_b40f_result))
    assert sharp == pytest.approx(soft, rel=0.15)


@pytest.mark.parametrize("case", ["p001", "normal001", "a0002_b70f", "a0002_b40f"])
def test_overlay_of_the_most_opaque_slice_is_written_for_people_to_look_at(
    case: str, request: pytest.FixtureRequest, tmp_path: Path
):
    """The most opaque slice of each shared case (without opacity: the slice with the most lung)
    with the lung (blue) and opacity (orange) contours, as a PNG in the test's temporary folder
    (kept as a CI artifact)."""
    result: PipelineResult = request.getfixturevalue(f"{case}_result")
    shown = result.opacity_mask if result.opacity_mask.any() else result.lung_labels > 0
    z = int(np.argmax(shown.sum(axis=(1, 2))))
    path = write_overlay(result, z, tmp_path / f"{case}-slice{z:03d}.png")
    print(f"\n{case}: {path}")
    image = np.asarray(Image.open(path))
    assert image.shape == (*result.volume.hu.shape[1:], 3)
    assert (image == LUNG_RGB).all(axis=-1).any()
    assert (image == OPACITY_RGB).all(axis=-1).any() == bool(result.opacity_mask[z].any())


LUNG_RGB, OPACITY_RGB = (0, 160, 255), (255, 120, 0)


def write_overlay(result: PipelineResult, z: int, path: Path) -> Path:
    """Slice z in the lung window (-1350..150 HU) with one-pixel contours of the lungs and the opacity."""
    grey = np.clip((result.volume.hu[z].astype(np.float32) + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for mask, colour in ((result.lung_labels[z] > 0, LUNG_RGB), (result.opacity_mask[z], OPACITY_RGB)):
        rgb[mask & ~ndimage.binary_erosion(mask)] = colour
    Image.fromarray(rgb).save(path)
    return path


def test_the_tracked_trachea_and_main_bronchi_stay_out_of_the_lung_mask(p001_result: PipelineResult):
    """The hull of a lung reaching around a main bronchus at the hilum used to cover it (11 ml of
    P001's airways and their walls were lung); the airways are now kept out of the fill."""
    spacing = SegmentationSettings().grid_spacing_zyx
    ct, _ = to_model_grid(p001_result.volume, spacing)
    airway = airway_mask((ct < AIRWAY_LUMEN_HU) & body_mask(ct), spacing)
    assert airway.sum() * float(np.prod(spacing)) / 1000.0 > 10.0  # trachea and main bronchi found
    assert not (segment_lungs(ct, spacing).astype(bool) & airway).any()
