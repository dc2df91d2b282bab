"""The left/right split works on any binary lung mask, such as a network's output."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from dicom_node.pipeline.lungs import LEFT, RIGHT, airway_mask, convex_hull_2d, split_left_right
from phantoms.chest import Phantom
from tests.pipeline.conftest import dice


def test_separate_lungs_are_labelled_by_the_patient_side(clear_phantom: Phantom):
    labels = split_left_right(clear_phantom.lungs > 0, clear_phantom.spacing)
    assert np.array_equal(labels, clear_phantom.lungs)


def test_lungs_touching_at_the_anterior_junction_are_cut_between_them(clear_phantom: Phantom):
    binary = clear_phantom.lungs > 0
    z0, z1 = binary.shape[0] // 3, 2 * binary.shape[0] // 3
    columns = np.flatnonzero(binary[(z0 + z1) // 2].any(axis=0))
    rows = np.flatnonzero(binary[(z0 + z1) // 2].any(axis=1))
    bridge = np.zeros_like(binary)
    bridge[z0:z1, rows[0] + 10 : rows[0] + 16, columns[0] : columns[-1]] = True  # a band of lung across the midline
    merged = binary | bridge
    labels = split_left_right(merged, clear_phantom.spacing)
    assert set(np.unique(labels)) == {0, RIGHT, LEFT}
    assert dice(labels == RIGHT, (clear_phantom.lungs == RIGHT) | (bridge & (np.arange(binary.shape[2]) < binary.shape[2] // 2))) >= 0.98
    assert dice(labels == LEFT, (clear_phantom.lungs == LEFT) | (bridge & (np.arange(binary.shape[2]) >= binary.shape[2] // 2))) >= 0.98


def test_convex_hull_holds_exactly_the_pixels_inside_the_hull_of_the_mask():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :70]
    for _ in range(20):
        mask = np.zeros((60, 70), dtype=bool)
        points = rng.integers(5, 55, size=(6, 2))
        mask[points[:, 0], points[:, 1]] = True
        expected = np.all([a * yy + b * xx + c <= 1e-9 for a, b, c in ConvexHull(np.argwhere(mask)).equations], axis=0)
        assert np.array_equal(convex_hull_2d(mask), expected)


def test_the_airway_tracker_follows_the_lumen_it_overlaps_not_specks_beside_it():
    """Below the trachea's end a chain of lumen specks (dark parenchyma at the lumen threshold), each within 2 voxels
    of the one above but not under it: the former tracker followed such chains down the lobar bronchi (LIDC-IDRI-0002:
    100 mL of hilum out of the lung 2 HU of calibration apart)."""
    spacing = (2.5, 1.6, 1.6)
    lumen = np.zeros((30, 64, 64), dtype=bool)
    y, x = np.ogrid[:64, :64]
    lumen[15:, (y - 32) ** 2 + (x - 32) ** 2 <= 16] = True  # a trachea of about 13 mm from the top down to slice 15
    for k, z in enumerate(range(14, 2, -1)):  # the chain: two voxels further along x at every slice down
        lumen[z, 32, 38 + 2 * k] = True
    airway = airway_mask(lumen, spacing)
    assert airway[15:].sum() == lumen[15:].sum()  # the whole trachea
    assert not airway[:15].any()
    lumen[:15, (y - 32) ** 2 + (x - 32) ** 2 <= 9] = True  # a narrower bronchus under it is followed
    assert airway_mask(lumen, spacing)[:15].sum() >= lumen[:15, 28:37, 28:37].sum()
