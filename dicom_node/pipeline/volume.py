"""A CT series as one volume, with the per-slice identity the DICOM results must reference.

Only the data contract shared with the output step lives here until the
pipeline's loader lands on this branch; the pipeline branch owns this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom


@dataclass(frozen=True)
class SourceSlice:
    """Where one z index of the volume came from, so results can point back at it."""

    sop_instance_uid: str
    sop_class_uid: str
    path: Path


@dataclass
class CtVolume:
    """A CT series in HU, z ascending along the slice normal (see docs/architecture.md)."""

    hu: np.ndarray  # int16 (z, y, x)
    spacing: tuple[float, float, float]  # (z, y, x) mm
    origin: tuple[float, float, float]  # LPS (x, y, z) of voxel [0, 0, 0]
    direction: np.ndarray  # 3x3, columns: row dir (x), column dir (y), slice normal (z)
    slices: list[SourceSlice]  # one per z index, same order as hu
    header: pydicom.Dataset  # first slice's dataset without pixel data
