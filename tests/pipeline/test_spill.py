"""A spilled array reads back exactly, is read-only, and leaves no file behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicom_node.pipeline.spill import spill_to_disk


def test_spilled_volume_reads_back_exactly_and_leaves_no_file(tmp_path: Path) -> None:
    volume = np.random.default_rng(1).integers(-1024, 3000, size=(12, 64, 48), dtype=np.int16)
    spilled = spill_to_disk(volume, tmp_path / "work")
    np.testing.assert_array_equal(spilled, volume)
    assert spilled.dtype == np.int16 and spilled.shape == volume.shape
    assert list((tmp_path / "work").iterdir()) == []  # anonymous: nothing to clean up after a crash
    with pytest.raises(ValueError):
        spilled[0, 0, 0] = 1  # read-only: the pipeline never writes the volume after the grid is built
