"""Opacity on phantoms with branching vessels, faint ground-glass nodules and consolidation,
reconstructed with a soft and a sharp kernel: lesions found, vessels left out, and one answer
for both kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicom_node.pipelines.covid19.pipeline import PipelineResult
from phantoms.chest import Phantom, make_phantom, write_phantom_series
from tests.pipeline.conftest import SMALL, dice, run_embedded

KERNELS = ("soft", "sharp")


def vessel_phantom(kernel: str) -> Phantom:
    """One anatomy (same seed) reconstructed with either kernel: 8 vessel trees per lung, 4 ground-glass
    nodules per lung and subpleural ground glass and consolidation over 4% of each lung."""
    return make_phantom(SMALL, 0.04, seed=5, vessel_tree=True, n_vessels_per_lung=8, ground_glass_nodules=4, kernel=kernel)


@pytest.fixture(scope="module")
def kernel_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Phantom, PipelineResult]]:
    runs = {}
    for kernel in KERNELS:
        phantom = vessel_phantom(kernel)
        runs[kernel] = phantom, run_embedded(write_phantom_series(phantom, tmp_path_factory.mktemp(kernel)))
    return runs


def test_phantom_has_what_the_kernel_test_needs():
    phantom = vessel_phantom("sharp")
    voxel_ml = float(np.prod(phantom.spacing)) / 1000.0
    assert phantom.vessels is not None and phantom.vessels.sum() * voxel_ml > 10.0
    nodule_hu = phantom.hu[phantom.opacity & ~phantom.consolidation]
    assert -700 < np.median(nodule_hu) < -450  # faint ground glass
    assert 3.0 < phantom.opacity_percent < 8.0


@pytest.mark.parametrize("kernel", KERNELS)
def test_opacity_matches_the_truth_and_leaves_vessels_out(kernel: str, kernel_runs):
    phantom, result = kernel_runs[kernel]
    found_dice = dice(result.opacity_mask, phantom.opacity)
    vessel_share = float((result.opacity_mask & phantom.vessels).sum()) / float(phantom.vessels.sum())
    print(f"\n{kernel}: opacity Dice {found_dice:.3f}, vessel voxels counted as opacity {100 * vessel_share:.1f}%")
    assert found_dice >= 0.85
    assert vessel_share < 0.05


def test_soft_and_sharp_kernels_give_the_same_po(kernel_runs):
    (_, soft), (truth, sharp) = kernel_runs["soft"], kernel_runs["sharp"]
    po_soft, po_sharp = soft.measurements.opacity_percent["total"], sharp.measurements.opacity_percent["total"]
    print(f"\nPO soft {po_soft:.2f}%, sharp {po_sharp:.2f}%, truth {truth.opacity_percent:.2f}%")
    assert po_soft == pytest.approx(po_sharp, rel=0.10)
