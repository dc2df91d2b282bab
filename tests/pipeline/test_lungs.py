"""The left/right split works on any binary lung mask, such as a network's output."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from dicom_node.pipeline.lungs import LEFT, RIGHT, convex_hull_2d, split_left_right
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
