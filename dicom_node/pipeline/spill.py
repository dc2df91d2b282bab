"""Move a large array that a job only reads again in a few places out of the process's memory.

After the model grid is built, the series' HU volume (78 MB for P001, 600 MB for
a 1200-slice series) is read again only for the few slices the key images show.
Written to an anonymous file (never named, gone with the last reference) and
mapped read-only, its pages leave the process: the kernel reads back only the
slices that are used, and a short job's file is dropped before it is ever
written out.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def spill_to_disk(array: np.ndarray, directory: Path) -> np.ndarray:
    """A read-only, file-backed copy of `array` in `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory) as file:
        np.ascontiguousarray(array).tofile(file)
        file.flush()
        return np.memmap(file, dtype=array.dtype, mode="r", shape=array.shape)
