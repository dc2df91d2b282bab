"""Depth inside a mask (distance to its boundary, in mm), on a grid subsampled in-plane.

scipy's exact Euclidean distance transform keeps a feature transform and index
grids of the whole array (about 45 bytes per voxel: 110 MiB and 0.4 s for the
classifier's 192x192x64 input). The questions asked of the depth here (within
15 mm of the pleura, the outer third of a lung) are answered to within half a
coarse voxel on a grid subsampled in-plane by a few voxels, at a tenth of the cost.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def coarse_depth_mm(mask: np.ndarray, spacing: tuple[float, float, float], step: int) -> tuple[np.ndarray, np.ndarray]:
    """(coarse mask, its depth in mm) of a (z, y, x) mask subsampled by `step` in y and x.

    Outside the array counts as outside the mask.
    """
    coarse = mask[:, ::step, ::step]
    sampling = (spacing[0], spacing[1] * step, spacing[2] * step)
    depth = ndimage.distance_transform_edt(np.pad(coarse, 1), sampling=sampling)[1:-1, 1:-1, 1:-1]
    return coarse, depth


def to_full_grid(coarse: np.ndarray, shape: tuple[int, ...], step: int) -> np.ndarray:
    """A coarse (z, y, x) array of `coarse_depth_mm` repeated back onto the full grid of `shape`."""
    return np.repeat(np.repeat(coarse, step, axis=1), step, axis=2)[:, : shape[1], : shape[2]]
