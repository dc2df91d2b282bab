"""Bounding boxes of masks, found without listing the mask's voxels.

`np.argwhere` lists every set voxel's (z, y, x) as int64, 24 bytes per voxel (72 MB for
P001's lungs on the model grid, 40 MB per native lung), only for a minimum and a maximum
to be taken; several steps did so beside the classifier thread, at the job's peak memory.
scipy's `find_objects` reads the mask once and allocates nothing of its size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Box = tuple[slice, ...]


def bounding_box(mask: np.ndarray) -> Box | None:
    """The smallest box (one slice per axis) holding every non-zero voxel of `mask`; None when there is none."""
    flags = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    found = ndimage.find_objects(flags, max_label=1)
    return found[0] if found and found[0] is not None else None


def label_boxes(labels: np.ndarray, max_label: int) -> list[Box | None]:
    """The bounding box of each label 1..`max_label` of an integer label map (None for a label that is absent)."""
    return list(ndimage.find_objects(labels, max_label=max_label))


def widened(box: Box, margin: int | Sequence[int], shape: Sequence[int]) -> Box:
    """`box` grown by `margin` voxels (one number, or one per axis) on each side, clipped to an array of `shape`."""
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (len(box),))
    return tuple(
        slice(max(0, b.start - int(m)), min(int(n), b.stop + int(m))) for b, m, n in zip(box, margins, shape)
    )
