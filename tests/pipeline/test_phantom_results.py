"""The whole pipeline on phantoms with known masks: what a user would check against the truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipeline.lungs import LEFT, RIGHT
from phantoms.chest import Phantom, write_phantom_series
from tests.pipeline.conftest import dice, run_embedded


@pytest.mark.parametrize("case", ["clear", "covid"])
def test_lungs_match_the_phantom(case: str, request: pytest.FixtureRequest):
    phantom: Phantom = request.getfixturevalue(f"{case}_phantom")
    result: PipelineResult = request.getfixturevalue(f"{case}_result")
    assert result.lung_labels.shape == phantom.lungs.shape
    assert dice(result.lung_labels > 0, phantom.lungs > 0) >= 0.97
    assert dice(result.lung_labels == RIGHT, phantom.lungs == RIGHT) >= 0.97
    assert dice(result.lung_labels == LEFT, phantom.lungs == LEFT) >= 0.97
    in_lung = (result.lung_labels[phantom.airway] > 0).mean()
    assert in_lung < 0.05, f"{in_lung:.0%} of the trachea and main bronchi counted as lung"


def test_consolidation_against_the_chest_wall_stays_in_the_lung_mask(clear_phantom: Phantom, tmp_path: Path):
    """Dense lung at the lateral pleura (where COVID-19 consolidates) must not be cut off.

    Known limit (see docs/pipeline.md): consolidation filling a lung's whole width on the
    medial side, or below the lung's widest level at the base, is partly lost."""
    z, y, x = np.meshgrid(*(o + s * np.arange(n) for o, s, n in zip(clear_phantom.origin, clear_phantom.spacing, clear_phantom.hu.shape)), indexing="ij")
    right_lateral = ((x + 135.0) / 25.0) ** 2 + ((y - 5.0) / 30.0) ** 2 + ((z - 40.0) / 30.0) ** 2 <= 1.0
    left_anterolateral = ((x - 125.0) / 25.0) ** 2 + ((y + 45.0) / 25.0) ** 2 + ((z - 60.0) / 25.0) ** 2 <= 1.0
    consolidation = (right_lateral | left_anterolateral) & (clear_phantom.lungs > 0)
    hu = clear_phantom.hu.copy()
    hu[consolidation] = 30
    phantom = replace(clear_phantom, hu=hu, opacity=consolidation, consolidation=consolidation)
    result = run_embedded(write_phantom_series(phantom, tmp_path))
    assert consolidation.sum() > 5000
    # the hull chord across the lesion cuts off the pleural curvature behind it: a sliver is lost
    assert (result.lung_labels[consolidation] > 0).mean() >= 0.8
    assert dice(result.lung_labels > 0, phantom.lungs > 0) >= 0.97


def test_opacity_mask_and_percentage_match_the_phantom(covid_phantom: Phantom, covid_result: PipelineResult):
    """PO against the truth inside the node's own lung mask, and how much of the truth that mask holds, apart: the
    classical lung mask leaves 14% of this phantom's opacity out (consolidation against the mediastinum, at the apex,
    in the basal recess: docs/validation.md), which is most of the end-to-end gap (PO 13.07 against 15.22%). Inside
    the mask: 13.07 against 13.36% (13.39% before the growth stopped at thin bright structures, which also gives up
    the blurred outer rims of small consolidations; 12.8% while the tubular test dropped round consolidations)."""
    in_mask = covid_result.lung_labels > 0
    truth_in_mask = 100.0 * float((covid_phantom.opacity & in_mask).sum()) / float(in_mask.sum())
    held = float((covid_phantom.opacity & in_mask).sum()) / float(covid_phantom.opacity.sum())
    print(f"\nPO {covid_result.measurements.opacity_percent['total']:.2f}% (truth {covid_phantom.opacity_percent:.2f}%, "
          f"{truth_in_mask:.2f}% inside the lung mask, which holds {100 * held:.0f}% of it), "
          f"Dice {dice(covid_result.opacity_mask, covid_phantom.opacity):.3f}")
    assert dice(covid_result.opacity_mask, covid_phantom.opacity) >= 0.8
    assert covid_result.measurements.opacity_percent["total"] == pytest.approx(truth_in_mask, abs=1.0)
    assert held >= 0.83
    for label, side in ((RIGHT, "right"), (LEFT, "left")):
        truth = 100.0 * (covid_phantom.opacity & (covid_phantom.lungs == label)).sum() / (covid_phantom.lungs == label).sum()
        assert covid_result.measurements.opacity_percent[side] == pytest.approx(truth, abs=3.0)
    assert 0 < covid_result.measurements.high_opacity_percent["total"] < covid_result.measurements.opacity_percent["total"]


def test_clear_phantom_scores_below_the_diseased_one(clear_result: PipelineResult, covid_result: PipelineResult):
    assert clear_result.measurements.opacity_percent["total"] < 1.0
    assert clear_result.measurements.opacity_percent["total"] < covid_result.measurements.opacity_percent["total"] - 10
    assert clear_result.classification.scores[1] < 0.5 < covid_result.classification.scores[1]
    assert covid_result.classification.baseline and covid_result.classification.model_name == "dicom-node-opacity-baseline"


def test_lung_volumes_in_ml_match_the_phantom(covid_phantom: Phantom, covid_result: PipelineResult):
    voxel_ml = float(np.prod(covid_phantom.spacing)) / 1000.0
    truth_ml = float((covid_phantom.lungs > 0).sum()) * voxel_ml
    assert covid_result.measurements.lung_volume_ml["total"] == pytest.approx(truth_ml, rel=0.05)


def test_every_step_is_timed(covid_result: PipelineResult):
    assert set(covid_result.timings) == {"load", "segment", "fitness", "classifier_input", "classify", "quantify", "describe", "to_native"}
    assert all(t >= 0 for t in covid_result.timings.values())


def test_flipped_image_orientation_gives_the_same_anatomy(clear_phantom: Phantom, clear_series: list[Path], tmp_path: Path):
    """Columns running from patient left to right (IOP -1\\0\\0\\0\\1\\0, slice normal towards the
    feet): the masks follow the stored pixels and the right lung is still the patient's right,
    now on the image's high-x side."""
    nx = clear_phantom.hu.shape[2]
    flipped = []
    for path in clear_series:
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [x + (nx - 1) * clear_phantom.spacing[2], y, z]
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, ::-1]).tobytes()
        ds.save_as(tmp_path / path.name)
        flipped.append(tmp_path / path.name)
    result = run_embedded(flipped)
    truth = clear_phantom.lungs[::-1, :, ::-1]  # slices sorted head first, columns flipped
    assert result.volume.spacing == pytest.approx(clear_phantom.spacing, abs=1e-3)
    assert dice(result.lung_labels == RIGHT, truth == RIGHT) >= 0.97
    assert dice(result.lung_labels == LEFT, truth == LEFT) >= 0.97
