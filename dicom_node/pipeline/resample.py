"""Moving arrays between a series' native grid and a model's grid.

The model grid is canonical (identity direction: x -> patient left, y -> posterior,
z -> head) with a fixed spacing, like Clara's AH-Net input (0.8 x 0.8 x 5 mm), so a
model never has to know the series' orientation or voxel size. Masks come back by
linear interpolation of their 0/1 values thresholded at 0.5, which gives smooth
boundaries, and only within the mask's bounding box, which keeps it fast at 512x512x300.

The way there is scipy's `affine_transform` (one affine map from output to input voxel
indices). The way back computes what ITK's linear resampling did before (SimpleITK was
dropped: its 270 MB library did only this and the decoding, see deploy/README.md): a point
is inside the grid from half a voxel before its first voxel centre to half a voxel after
its last, where the edge voxels' values extend; outside, the mask is 0. Axis-aligned series
(flips included) go plane by plane in numpy, in ITK's order of operations; any other
orientation through `affine_transform`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.boxes import Box, bounding_box, widened
from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.volume import CtVolume

MASK_ON = 255  # a mask travels as uint8 0/255 ...
MASK_THRESHOLD = 128  # ... and is set where its interpolated value reaches this (0.5 of 255, as a uint8 would)
MASK_SLAB = 8  # native slices per task of a thread (oblique series: 16 MB of float64 values at 512 x 512)


@dataclass(frozen=True)
class ModelGrid:
    """Where a model grid lies: identity direction, voxel (z, y, x) at LPS `origin_xyz + (x, y, z) * spacing_xyz`.

    `to_model_grid` returns it with the array; `mask_to_native` needs it to bring results back.
    """

    origin_xyz: tuple[float, float, float]
    spacing_xyz: tuple[float, float, float]
    shape_zyx: tuple[int, int, int]

    def point_xyz(self, index_zyx: Sequence[float]) -> np.ndarray:
        """LPS (x, y, z) of a (continuous) grid index given as (z, y, x)."""
        return np.asarray(self.origin_xyz) + np.asarray(index_zyx, dtype=float)[::-1] * np.asarray(self.spacing_xyz)


def to_model_grid(
    volume: CtVolume,
    spacing_zyx: tuple[float, float, float],
    clip_hu: tuple[float, float] | None = None,
    max_voxels: int | None = None,
    threads: int = 2,
) -> tuple[np.ndarray, ModelGrid]:
    """The CT resampled (linearly) onto a canonical grid covering the whole volume, as float32 HU.

    scipy's affine_transform reads the int16 array in place, without a copy of the whole series.

    scipy releases the GIL while it interpolates, so `threads` slabs of the grid are resampled at
    once (P001: 0.2 s instead of 0.4 s on two cores, the same values).

    Returns the (z, y, x) array and the grid's geometry, which `mask_to_native` needs to
    bring results back. A grid of more than `max_voxels` is refused
    (SeriesRejected) before it is allocated.
    """
    corners = _corner_points(volume)
    low, high = corners.min(axis=0), corners.max(axis=0)
    spacing_xyz = np.asarray(spacing_zyx[::-1], dtype=float)
    size = np.maximum(1, np.floor((high - low) / spacing_xyz).astype(int) + 1)
    if max_voxels is not None and int(np.prod(size)) > max_voxels:
        raise SeriesRejected(
            f"the model grid would have {size[0]} x {size[1]} x {size[2]} = {np.prod(size) / 1e6:.0f} million voxels of "
            f"{spacing_zyx[2]:g} x {spacing_zyx[1]:g} x {spacing_zyx[0]:g} mm, more than {max_voxels / 1e6:.0f} million "
            "(pipeline.segmentation.max_grid_voxels)"
        )
    grid = ModelGrid(
        tuple(float(v) for v in low), tuple(float(v) for v in spacing_xyz), tuple(int(n) for n in size[::-1])  # type: ignore[arg-type]
    )
    # native (x, y, z) index = D^T (low + grid index * grid spacing - origin) / native spacing, in (z, y, x) order
    d = np.asarray(volume.direction).reshape(3, 3)
    native_spacing_xyz = np.asarray(volume.spacing[::-1])
    matrix_xyz = (d.T * spacing_xyz[None, :]) / native_spacing_xyz[:, None]
    offset_xyz = d.T @ (low - np.asarray(volume.origin[::-1])) / native_spacing_xyz
    array = _affine_in_slabs(volume.hu, matrix_xyz[::-1, ::-1], offset_xyz[::-1], tuple(int(n) for n in size[::-1]), threads)
    if clip_hu is not None:
        np.clip(array, clip_hu[0], clip_hu[1], out=array)
    return array, grid


def _affine_in_slabs(
    source: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, ...], threads: int
) -> np.ndarray:
    """scipy's linear `affine_transform` into a float32 array of `shape`, one slab along z per thread.

    Output index i maps to input `matrix @ i + offset`.
    """
    out = np.empty(shape, dtype=np.float32)

    def resample(z0: int, z1: int) -> None:
        ndimage.affine_transform(
            source, matrix, offset=offset + matrix[:, 0] * z0, output_shape=(z1 - z0, *shape[1:]),
            output=out[z0:z1], order=1, mode="constant", cval=-1024.0, prefilter=False,
        )

    _in_slabs(shape[0], threads, resample)
    return out


def _in_slabs(depth: int, threads: int, work: Callable[[int, int], None], max_slab: int | None = None) -> None:
    """`work(z0, z1)` for slabs covering 0..`depth` along z, `threads` at once (scipy releases the GIL): one slab
    per thread, or slabs of at most `max_slab` slices where a slab's temporaries must stay small.

    An affine map from output index i to input `matrix @ i + offset` is, for a slab starting at z0,
    the same map with its offset moved by `matrix[:, 0] * z0`.
    """
    slabs = max(1, min(threads, depth), -(-depth // max_slab) if max_slab else 0)
    cuts = np.linspace(0, depth, slabs + 1).astype(int)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, slabs)), thread_name_prefix="resample") as pool:
        for done in [pool.submit(work, int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]:
            done.result()


def mask_to_native(mask: np.ndarray, grid: ModelGrid, volume: CtVolume, within: np.ndarray | None = None) -> np.ndarray:
    """A binary mask on the model grid brought onto the volume's grid (bool, z, y, x), kept only
    where `within` (any native array, e.g. the lung labels) is non-zero when given."""
    native = np.zeros(volume.hu.shape, dtype=bool)
    paint_to_native(native, mask, grid, volume, True, within)
    return native


def labels_to_native(labels: np.ndarray, grid: ModelGrid, volume: CtVolume) -> np.ndarray:
    """A label map (uint8) on the model grid brought onto the volume's grid, label by label."""
    native = np.zeros(volume.hu.shape, dtype=np.uint8)
    for label in np.unique(labels[labels > 0]):
        paint_to_native(native, labels == label, grid, volume, int(label))
    return native


def paint_to_native(
    target: np.ndarray, mask: np.ndarray, grid: ModelGrid, volume: CtVolume, value: int | bool, within: np.ndarray | None = None
) -> None:
    """Set `value` in the native-grid `target` where the grid `mask` lands (and `within` is non-zero).

    Works inside the mask's bounding box only, so no full-size temporary is made.
    """
    resampled = _resample_to_native_box(mask, grid, volume)
    if resampled is None:
        return
    box, inside = resampled
    if within is not None:
        inside &= within[box] != 0
    target[box][inside] = value


def _resample_to_native_box(
    mask: np.ndarray, grid: ModelGrid, volume: CtVolume, margin_voxels: int = 2, threads: int = 2
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """The mask resampled onto the part of the native grid that its bounding box covers.

    The mask travels as uint8 0/255, cut to its bounding box and one voxel of zeros around it
    (edge voxels extend only at the grid's own edges), and is interpolated in double precision:
    set where the value reaches 128, which is where a uint8 result, truncated, would reach it.
    """
    grid_box = bounding_box(mask)
    if grid_box is None:
        return None
    box = _native_box(grid_box, grid, volume, margin_voxels)
    shape = tuple(b.stop - b.start for b in box)
    source_box = widened(grid_box, 1, mask.shape)
    source = mask[source_box].astype(np.uint8) * np.uint8(MASK_ON)
    to_grid, grid_offset = _native_to_grid(volume, grid, [b.start for b in box])
    within = _inside_grid(to_grid, grid_offset, shape, grid.shape_zyx)
    to_source_offset = grid_offset - np.array([b.start for b in source_box], dtype=float)
    interpolate = (
        _separable_linear(source, np.diagonal(to_grid), to_source_offset, shape)
        if _is_diagonal(to_grid)
        else _affine_linear(source, to_grid, to_source_offset, shape)
    )
    inside = np.empty(shape, dtype=bool)

    def resample(z0: int, z1: int) -> None:
        interpolate(z0, z1, inside[z0:z1])
        if within is not None:
            inside[z0:z1] &= within(z0, z1)

    _in_slabs(shape[0], threads, resample, MASK_SLAB)
    return box, inside


# Fills its bool output for the native slices z0..z1 with where the interpolated mask reaches MASK_THRESHOLD.
Interpolation = Callable[[int, int, np.ndarray], None]


def _affine_linear(source: np.ndarray, matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]) -> Interpolation:
    """Linear interpolation of `source` at `matrix @ i + offset` (float64), edge voxels extended: scipy's
    `affine_transform`, for any orientation."""

    def slab(z0: int, z1: int, out: np.ndarray) -> None:
        values = ndimage.affine_transform(
            source, matrix, offset=offset + matrix[:, 0] * z0, output_shape=(z1 - z0, *shape[1:]),
            output=np.float64, order=1, mode="nearest", prefilter=False,
        )
        np.greater_equal(values, MASK_THRESHOLD, out=out)

    return slab


def _separable_linear(source: np.ndarray, scale: np.ndarray, offset: np.ndarray, shape: tuple[int, ...]) -> Interpolation:
    """`_affine_linear` for a diagonal map (each output axis follows one source axis, as in an axis-aligned
    series), computed as ITK's trilinear interpolation does, `a + (b - a) * d` along x, then y, then z: each source
    slice once onto the output's rows and columns (a plane of float64), then each output slice from two planes.
    About 3 times faster than `affine_transform`, and its temporaries are a few planes."""
    axes = [_axis_steps(np.arange(n) * scale[axis] + offset[axis], source.shape[axis]) for axis, n in enumerate(shape)]
    (z_low, z_high, z_d), (y_low, y_high, y_d), (x_low, x_high, x_d) = axes

    def plane(k: int) -> np.ndarray:
        rows = source[k].astype(np.float64)
        rows = rows[:, x_low] + (rows[:, x_high] - rows[:, x_low]) * x_d
        return rows[y_low] + (rows[y_high] - rows[y_low]) * y_d[:, None]

    def slab(z0: int, z1: int, out: np.ndarray) -> None:
        planes: dict[int, np.ndarray] = {}
        for z in range(z0, z1):
            low, high = int(z_low[z]), int(z_high[z])
            planes = {k: planes[k] if k in planes else plane(k) for k in (low, high)}
            np.greater_equal(planes[low] + (planes[high] - planes[low]) * z_d[z], MASK_THRESHOLD, out=out[z - z0])

    return slab


def _axis_steps(coordinates: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For continuous indices along one axis of `size` voxels: the voxel below, the voxel above and the distance
    from the one below, as ITK's linear interpolator takes them (no step, distance 0, before the first voxel and
    after the last: the edge voxel extends)."""
    low = np.clip(np.floor(coordinates), 0, size - 1).astype(np.intp)
    distance = coordinates - low
    step = distance > 0
    return low, np.where(step, np.minimum(low + 1, size - 1), low), np.where(step, distance, 0.0)


def _native_to_grid(volume: CtVolume, grid: ModelGrid, start_zyx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The affine map (matrix, offset; z, y, x order) from native voxel indices counted from `start_zyx` to
    continuous grid indices: the native voxel's LPS point, less the grid's origin, over the grid's spacing."""
    d = np.asarray(volume.direction).reshape(3, 3)
    native_spacing_xyz = np.asarray(volume.spacing[::-1], dtype=float)
    grid_spacing_xyz = np.asarray(grid.spacing_xyz)
    matrix_xyz = d * native_spacing_xyz[None, :] / grid_spacing_xyz[:, None]
    start_point = np.asarray(_native_point(volume, [float(v) for v in start_zyx[::-1]]))
    offset_xyz = (start_point - np.asarray(grid.origin_xyz)) / grid_spacing_xyz
    return matrix_xyz[::-1, ::-1], offset_xyz[::-1]


def _is_diagonal(matrix: np.ndarray) -> bool:
    return not np.any(matrix - np.diag(np.diagonal(matrix)))


def _inside_grid(
    matrix: np.ndarray, offset: np.ndarray, shape: tuple[int, ...], grid_shape: tuple[int, int, int]
) -> Callable[[int, int], np.ndarray] | None:
    """None when every output voxel of `shape` maps inside the grid (half a voxel beyond its edge voxels' centres);
    else a function giving, for the slab z0..z1, which voxels do. The region is convex: its box's corners decide."""
    low, high = -0.5, np.asarray(grid_shape, dtype=float) - 0.5
    corners = np.array([matrix @ (np.array(bits) * (np.asarray(shape) - 1)) + offset for bits in np.ndindex(2, 2, 2)])
    if bool(np.all((corners >= low) & (corners < high))):
        return None
    if _is_diagonal(matrix):  # each grid axis follows one native axis: the test is one per axis
        axes = [np.arange(n) * matrix[axis, axis] + offset[axis] for axis, n in enumerate(shape)]
        z_in, y_in, x_in = ((a >= low) & (a < high[axis]) for axis, a in enumerate(axes))
        return lambda z0, z1: z_in[z0:z1, None, None] & y_in[None, :, None] & x_in[None, None, :]

    def within(z0: int, z1: int) -> np.ndarray:
        z, y, x = np.ogrid[z0:z1, 0 : shape[1], 0 : shape[2]]
        inside = np.ones((z1 - z0, *shape[1:]), dtype=bool)
        for axis in range(3):
            coordinate = matrix[axis, 0] * z + matrix[axis, 1] * y + matrix[axis, 2] * x + offset[axis]
            inside &= (coordinate >= low) & (coordinate < high[axis])
        return inside

    return within


def _native_point(volume: CtVolume, index_xyz: list[float]) -> tuple[float, float, float]:
    """LPS point of a (continuous) native voxel index given as (x, y, z)."""
    d = np.asarray(volume.direction).reshape(3, 3)
    offset = d @ (np.asarray(index_xyz, dtype=float) * np.asarray(volume.spacing[::-1]))
    return tuple(float(v) for v in np.asarray(volume.origin[::-1]) + offset)


def _corner_points(volume: CtVolume) -> np.ndarray:
    """LPS (x, y, z) positions of the volume's eight corner voxels."""
    size_xyz = np.asarray(volume.hu.shape[::-1]) - 1
    return np.array([_native_point(volume, list(size_xyz * np.array(bits))) for bits in np.ndindex(2, 2, 2)])


def _native_box(grid_box: Box, grid: ModelGrid, volume: CtVolume, margin: int) -> tuple[slice, slice, slice]:
    """Bounding box (z, y, x slices) on the native grid of a box of grid voxels, widened by `margin` of them."""
    low = np.array([s.start for s in grid_box]) - margin
    high = np.array([s.stop - 1 for s in grid_box]) + margin
    d = np.asarray(volume.direction).reshape(3, 3)
    corners = []
    for bits in np.ndindex(2, 2, 2):
        zyx = np.where(bits, high, low)
        point = grid.point_xyz(zyx)
        index_xyz = (d.T @ (point - np.asarray(volume.origin[::-1]))) / np.asarray(volume.spacing[::-1])
        corners.append(index_xyz[::-1])
    corners = np.array(corners)
    start = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, volume.hu.shape)
    stop = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, volume.hu.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))  # type: ignore[return-value]
