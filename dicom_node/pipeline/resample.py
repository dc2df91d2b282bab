"""Moving arrays between a series' native grid and a model's grid.

The model grid is canonical (identity direction: x -> patient left, y -> posterior,
z -> head) with a fixed spacing, like Clara's AH-Net input (0.8 x 0.8 x 5 mm), so a
model never has to know the series' orientation or voxel size. Masks come back by
linear interpolation of their 0/1 values thresholded at 0.5, which gives smooth
boundaries, and only within the mask's bounding box, which keeps it fast at 512x512x300.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from dicom_node.pipeline.volume import CtVolume


def to_model_grid(volume: CtVolume, spacing_zyx: tuple[float, float, float], clip_hu: tuple[float, float] | None = None) -> tuple[np.ndarray, sitk.Image]:
    """The CT resampled (linearly) onto a canonical grid covering the whole volume, as float32 HU.

    Returns the (z, y, x) array and an ITK image carrying the grid's geometry, which
    `mask_to_native` needs to bring results back.
    """
    image = volume.to_sitk()
    corners = _corner_points(image)
    low, high = corners.min(axis=0), corners.max(axis=0)
    spacing_xyz = np.asarray(spacing_zyx[::-1], dtype=float)
    size = np.maximum(1, np.floor((high - low) / spacing_xyz).astype(int) + 1)
    reference = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    reference.SetSpacing(tuple(spacing_xyz))
    reference.SetOrigin(tuple(low))
    grid = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(grid)
    if clip_hu is not None:
        np.clip(array, clip_hu[0], clip_hu[1], out=array)
    return array, reference


def mask_to_native(mask: np.ndarray, grid: sitk.Image, volume: CtVolume, margin_voxels: int = 2) -> np.ndarray:
    """A binary mask on the model grid brought onto the volume's grid (bool, z, y, x)."""
    native = np.zeros(volume.hu.shape, dtype=bool)
    if not mask.any():
        return native
    source = sitk.GetImageFromArray(mask.astype(np.float32))
    source.CopyInformation(grid)
    box = _native_box(mask, grid, volume, margin_voxels)
    reference = sitk.Image([b.stop - b.start for b in box[::-1]], sitk.sitkUInt8)
    reference.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))
    reference.SetDirection(volume.direction)
    reference.SetOrigin(volume.to_sitk(np.zeros((1, 1, 1), np.uint8)).TransformIndexToPhysicalPoint([box[2].start, box[1].start, box[0].start]))
    resampled = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    native[box] = sitk.GetArrayViewFromImage(resampled) >= 0.5
    return native


def labels_to_native(labels: np.ndarray, grid: sitk.Image, volume: CtVolume) -> np.ndarray:
    """A label map (uint8) on the model grid brought onto the volume's grid, label by label."""
    native = np.zeros(volume.hu.shape, dtype=np.uint8)
    for label in np.unique(labels[labels > 0]):
        native[mask_to_native(labels == label, grid, volume) & (native == 0)] = label
    return native


def _corner_points(image: sitk.Image) -> np.ndarray:
    size = np.asarray(image.GetSize()) - 1
    return np.array(
        [image.TransformContinuousIndexToPhysicalPoint([float(c) for c in size * np.array(bits)]) for bits in np.ndindex(2, 2, 2)]
    )


def _native_box(mask: np.ndarray, grid: sitk.Image, volume: CtVolume, margin: int) -> tuple[slice, slice, slice]:
    """Bounding box (z, y, x slices) on the native grid of the grid voxels set in `mask`."""
    nonzero = np.argwhere(mask)
    low, high = nonzero.min(axis=0) - margin, nonzero.max(axis=0) + margin
    native = volume.to_sitk(np.zeros((1, 1, 1), np.uint8))
    corners = []
    for bits in np.ndindex(2, 2, 2):
        zyx = np.where(bits, high, low)
        point = grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]])
        corners.append(native.TransformPhysicalPointToContinuousIndex(point)[::-1])
    corners = np.array(corners)
    start = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, volume.hu.shape)
    stop = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, 0, volume.hu.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))  # type: ignore[return-value]
