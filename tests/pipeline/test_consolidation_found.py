"""Consolidation is opacity whatever its shape: a round consolidation inside the lung and a lens against the chest
wall are found with the default settings (the tubular test, now off by default, dropped both: per voxel, the surface
of a blob larger than the Hessian's scale curves like a tube)."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipelines.covid19.opacity import opacity_masks
from tests.pipeline.conftest import dice

SPACING = (2.5, 1.6, 1.6)


def chest_block(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Air outside, a chest wall of 40 HU and aerated lung (-850 HU) inside it, 15 HU noise; the CT, its lung mask and
    the z, y, x coordinates in mm from the block's centre."""
    rng = np.random.default_rng(seed)
    shape = (40, 120, 120)
    z, y, x = (
        s * (np.arange(n) - n // 2).reshape([-1 if i == k else 1 for i in range(3)]) for k, (n, s) in enumerate(zip(shape, SPACING))
    )
    body = (y**2 + x**2 <= 90.0**2) & (np.abs(z) < 1e9)
    lung = (y**2 + x**2 <= 70.0**2) & (np.abs(z) <= 40.0)
    hu = np.where(lung, -850.0, np.where(body, 40.0, -1000.0)).astype(np.float32)
    return hu + rng.normal(0.0, 15.0, shape).astype(np.float32), lung, np.broadcast_arrays(z, y, x)


@pytest.mark.parametrize("where", ["round, inside the lung", "lens against the chest wall"])
def test_a_consolidation_is_found_whatever_its_shape(where: str):
    hu, lung, (z, y, x) = chest_block()
    if where.startswith("round"):
        lesion = (z**2 + (y - 20.0) ** 2 + x**2 <= 10.0**2) & lung  # 4 mL
    else:
        lesion = (z**2 + y**2 + (x - 70.0) ** 2 <= 14.0**2) & lung  # a ball centred on the pleura: 6 mL
    hu[lesion] = 20.0 + np.random.default_rng(1).normal(0.0, 15.0, int(lesion.sum()))
    found = opacity_masks(hu, lung.astype(np.uint8), SPACING).opacity
    voxel_ml = float(np.prod(SPACING)) / 1000.0
    print(f"\n{where}: {lesion.sum() * voxel_ml:.1f} mL, Dice {dice(found, lesion):.3f}")
    assert lesion.sum() * voxel_ml >= 3.0
    assert dice(found, lesion) >= 0.8
