"""Masks back on the native grid: the rule for the grid's edges, and the fast axis-aligned path against scipy's general
one (before SimpleITK left, the whole pipeline's results on four shared series were compared bit for bit: the commit
that removed it, and docs/pipeline.md)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dicom_node.pipeline import resample
from dicom_node.pipeline.resample import mask_to_native, to_model_grid
from dicom_node.pipeline.volume import CtVolume


def blank_volume(shape: tuple[int, int, int], spacing: tuple[float, float, float], direction: np.ndarray,
                 origin: tuple[float, float, float] = (-40.0, 12.5, 3.0)) -> CtVolume:
    return CtVolume(
        hu=np.zeros(shape, np.int16), spacing=spacing, origin=origin, direction=tuple(float(v) for v in direction.ravel()),
        series_instance_uid="1.2.3", study_instance_uid="1.2.4", frame_of_reference_uid="1.2.5",
        source_files=(None,) * shape[0], sop_instance_uids=(None,) * shape[0],
    )


def test_a_full_grid_mask_reaches_half_a_grid_voxel_beyond_the_edge_voxels_centres() -> None:
    """2 mm slices on a 5 mm grid: the grid's last voxel centre lies below the last slice; slices up to 2.5 mm
    beyond it take the edge voxel's value, the ones further out none (as ITK's linear resampling did)."""
    volume = blank_volume((40, 24, 24), (2.0, 1.0, 1.0), np.eye(3))
    ct, grid = to_model_grid(volume, (5.0, 1.0, 1.0))
    assert grid.shape_zyx == (16, 24, 24) and ct.shape == grid.shape_zyx  # 78 mm of slices: centres 0..75 mm
    native = mask_to_native(np.ones(grid.shape_zyx, dtype=bool), grid, volume)
    depth_mm = np.arange(40) * 2.0
    expected_slices = depth_mm < 75.0 + 2.5  # slice 39 at 78 mm lies beyond 77.5 mm
    assert np.array_equal(native.all(axis=(1, 2)), expected_slices)
    assert not native[~expected_slices].any()


def test_an_empty_mask_paints_nothing() -> None:
    volume = blank_volume((10, 16, 16), (2.0, 1.0, 1.0), np.eye(3))
    _, grid = to_model_grid(volume, (5.0, 1.0, 1.0))
    assert not mask_to_native(np.zeros(grid.shape_zyx, dtype=bool), grid, volume).any()


@pytest.mark.parametrize("seed", range(6))
def test_the_axis_aligned_path_gives_what_scipys_affine_transform_gives(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flipped axes, odd spacings, blobs cut by the grid's edges: the separable interpolation and scipy's general
    one (which oblique series take) set the same voxels."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers([15, 30, 30], [40, 70, 70]))
    volume = blank_volume(shape, tuple(float(v) for v in rng.uniform([0.8, 0.5, 0.5], [4.0, 1.2, 1.2])),  # type: ignore[arg-type]
                          np.diag(rng.choice([-1.0, 1.0], 3)))
    _, grid = to_model_grid(volume, tuple(float(v) for v in rng.uniform([2.0, 0.6, 0.6], [6.0, 1.5, 1.5])))  # type: ignore[arg-type]
    zz, yy, xx = np.indices(grid.shape_zyx)
    centre, radius = rng.uniform(0, 1, 3) * grid.shape_zyx, rng.uniform(0.3, 0.7, 3) * grid.shape_zyx
    mask = (((zz - centre[0]) / radius[0]) ** 2 + ((yy - centre[1]) / radius[1]) ** 2 + ((xx - centre[2]) / radius[2]) ** 2) < 1
    mask &= rng.uniform(size=grid.shape_zyx) < 0.8
    separable = mask_to_native(mask, grid, volume)
    monkeypatch.setattr(resample, "_is_diagonal", lambda matrix: False)
    general = mask_to_native(mask, grid, volume)
    assert separable.any() and np.array_equal(separable, general)


def test_an_oblique_series_gets_its_mask_back() -> None:
    """A rotated series goes through scipy's general path: a mask filling the grid's middle third comes back as
    a blob of about the same volume."""
    volume = blank_volume((30, 60, 60), (2.0, 1.0, 1.0), Rotation.from_euler("xyz", [0.2, -0.1, 0.15]).as_matrix())
    _, grid = to_model_grid(volume, (2.0, 1.0, 1.0))
    mask = np.zeros(grid.shape_zyx, dtype=bool)
    middle = tuple(slice(n // 3, 2 * n // 3) for n in grid.shape_zyx)
    mask[middle] = True
    native = mask_to_native(mask, grid, volume)
    assert native.sum() * 2.0 == pytest.approx(mask.sum() * 2.0, rel=0.1)
