"""Kernel harmonisation: the noise and edge spread are measured from the image, and scans of one anatomy
reconstructed with a soft and a sharp kernel leave it at one resolution and noise."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import special

from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipeline.harmonise import SQRT_2PI, edge_spread_mm, fine_noise_hu, harmonised, quality_flags
from phantoms.chest import make_phantom
from dicom_node.pipeline.resample import to_model_grid
from dicom_node.pipeline.settings import HarmonisationSettings, SegmentationSettings
from tests.validation.phantom_suite import phantom_volume

GRID = SegmentationSettings().grid_spacing_zyx


def disc_slices(sigma_mm: float, noise_hu: float, seed: int = 0) -> np.ndarray:
    """Air (-1000 HU) around a soft-tissue disc (40 HU, radius 110 mm) holding a lung-like disc (-850 HU, 60 mm), on
    the model grid, its edges those of a Gaussian blur of `sigma_mm` (sampled exactly), with white noise of `noise_hu`."""
    z, y, x = np.ogrid[:12, :160, :160]
    r = np.hypot((y - 80) * GRID[1], (x - 80) * GRID[2]) + 0 * z
    image = -1000.0 + 1040.0 * special.ndtr((110.0 - r) / sigma_mm) - 890.0 * special.ndtr((60.0 - r) / sigma_mm)
    return (image + np.random.default_rng(seed).normal(0.0, noise_hu, image.shape)).astype(np.float32)


@pytest.mark.parametrize("sigma_mm", [0.6, 1.0, 1.5, 2.0])
def test_the_edge_spread_of_a_blurred_step_is_its_10_to_90_percent_width(sigma_mm: float):
    assert edge_spread_mm(disc_slices(sigma_mm, 5.0), GRID) == pytest.approx(SQRT_2PI * sigma_mm, rel=0.1)


def test_the_noise_estimate_follows_the_noise_and_not_the_edges():
    lung = np.zeros((12, 160, 160), dtype=bool)
    lung[:, 50:110, 50:110] = True  # inside the -850 HU disc (radius 60 mm = 37 voxels around 80)
    quiet, loud = (fine_noise_hu(disc_slices(1.0, n), lung, GRID) for n in (10.0, 40.0))
    assert loud == pytest.approx(4.0 * quiet, rel=0.1)
    assert 0.8 * 10.0 < quiet < 1.1 * 10.0  # the 2 mm high-pass keeps nearly all of white noise


def phantom_grid(kernel: str, noise_hu: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    phantom = make_phantom((256, 256, 40), 0.0, seed=3, kernel=kernel, noise_hu=noise_hu)
    ct, _ = to_model_grid(phantom_volume(phantom), GRID)
    lungs, _ = to_model_grid(phantom_volume(replace(phantom, hu=phantom.lungs.astype(np.int16) * 100)), GRID)
    return ct, lungs > 50


def test_soft_and_sharp_kernels_of_one_anatomy_end_at_one_resolution_and_noise():
    settings = HarmonisationSettings()
    results = {kernel: harmonised(*phantom_grid(kernel), GRID, settings) for kernel in ("soft", "sharp")}
    soft, sharp = results["soft"][1], results["sharp"][1]
    assert sharp.noise_hu > 2.0 * soft.noise_hu and sharp.edge_spread_mm < soft.edge_spread_mm  # as received
    assert sharp.smoothing_mm > soft.smoothing_mm
    for smooth, quality in results.values():
        assert quality.residual_noise_hu <= settings.reference_noise_hu * (1.0 + settings.noise_tolerance)
        assert not quality.very_low_dose
    assert sharp.residual_noise_hu == pytest.approx(soft.residual_noise_hu, abs=4.0)


def test_a_scan_within_the_noise_tolerance_is_still_smoothed_to_the_reference_noise():
    """The tolerance decides the flag, not where smoothing stops: a sharp kernel left at 15-19 HU read faint ground
    glass as speckle (P001's sharpest variant 15% low, docs/validation.md 'Smoothed to the reference noise')."""
    settings = HarmonisationSettings()
    _, quality = harmonised(*phantom_grid("sharp", noise_hu=125.0), GRID, settings)
    limit = settings.reference_noise_hu * (1.0 + settings.noise_tolerance)
    assert settings.reference_noise_hu < quality.noise_at_reference_resolution_hu < limit  # within the tolerance
    assert quality.residual_noise_hu <= settings.reference_noise_hu and quality.harmonised


def test_a_noise_that_smoothing_cannot_bring_down_is_flagged_not_hidden():
    settings = HarmonisationSettings(max_smoothing_mm=1.5)  # above the resolution step (1.35 mm)
    ct, lung = phantom_grid("sharp", noise_hu=400.0)
    _, quality = harmonised(ct, lung, GRID, settings)
    assert quality.smoothing_mm == pytest.approx(settings.max_smoothing_mm)
    assert quality.noisy_after_harmonisation and quality.very_low_dose and not quality.harmonised
    assert [flag.code for flag in quality_flags(quality, settings)] == ["NOISYKERNEL", "LOWDOSE"]


def test_a_scan_already_softer_than_the_reference_is_not_sharpened_and_says_so():
    ct, lung = phantom_grid("soft")
    settings = HarmonisationSettings(reference_edge_spread_mm=2.0)
    _, quality = harmonised(ct, lung, GRID, settings)
    assert quality.smoothing_mm == 0.0
    assert quality.edge_spread_mm > 2.0 * (1.0 + settings.resolution_tolerance)
    assert not quality.harmonised


def test_the_pipeline_result_carries_the_image_quality(clear_result: PipelineResult):
    quality = clear_result.image_quality
    assert quality is not None and quality.harmonised
    assert not {"NOISYKERNEL", "LOWDOSE"} & {flag.code for flag in clear_result.fitness}
    assert quality.noise_hu > quality.residual_noise_hu > 0.0 and quality.edge_spread_mm > 0.0
