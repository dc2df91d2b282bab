"""Frangi vesselness at chosen points: tubes score high, blobs and plates low; closed-form eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicom_node.pipelines.covid19.vesselness import symmetric_eigenvalues, vesselness_at

SPACING = (2.5, 1.6, 1.6)


def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(s * (np.arange(n) - n // 2).reshape([-1 if i == k else 1 for i in range(3)]) for k, (n, s) in enumerate(zip((40, 60, 60), SPACING)))


def test_eigenvalues_match_numpy():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(200, 3, 3))
    m = m + m.transpose(0, 2, 1)
    ours = symmetric_eigenvalues(m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2])
    assert np.sort(ours, axis=0).T == pytest.approx(np.linalg.eigvalsh(m), abs=1e-9)
    assert (np.diff(np.abs(ours), axis=0) >= -1e-12).all()  # sorted by magnitude


@pytest.mark.parametrize("shape", ["tube", "ball", "plate"])
def test_only_a_tube_is_tubular(shape: str):
    z, y, x = grid()
    if shape == "tube":  # 6 mm across, along z
        inside = (y**2 + x**2 <= 9.0) & (np.abs(z) < 1e9)
    elif shape == "ball":  # a 12 mm nodule
        inside = z**2 + y**2 + x**2 <= 36.0
    else:  # a 6 mm thick band
        inside = (np.abs(x) <= 3.0) & (np.abs(z) + np.abs(y) < 1e9)
    image = ndimage.gaussian_filter(np.where(inside, 40.0, -860.0).astype(np.float32), [1.0 / s for s in SPACING])
    centre = np.zeros(image.shape, dtype=bool)
    centre[20, 30, 30] = True
    v = max(float(vesselness_at(image, centre, SPACING, scale, 1.0)[0]) for scale in (2.0, 3.5, 5.0))
    assert (v > 0.5) if shape == "tube" else (v < 0.3)
