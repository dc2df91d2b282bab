"""The classifier's input tensor (Clara `classification_covid-19_v1` contract).

The CT is cropped to the lung mask's bounding box plus `margin_mm`, resized to
192x192x64 (x, y, z) with linear interpolation, voxels outside the (resized) lung mask
are set to `fill_hu` (Clara's v1 masked the lungs; None keeps the CT as the later MONAI
release did), the HU window is clipped and mapped linearly onto `output_range`, and
the axes are ordered as `layout` says (default N, C, X, Y, Z -> [1, 1, 192, 192, 64]).
Defaults: window [-1000, 500] HU -> [0, 1], fill -1000 HU (-> 0), margin 10 mm.
The input is the CT on the canonical model grid, so x is patient left, y posterior, z head.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.boxes import bounding_box, widened
from dicom_node.pipeline.settings import ClassifierInputSettings

AXES_ZYX = ("Z", "Y", "X")


def lung_bounding_box(
    lungs: np.ndarray, spacing: tuple[float, float, float], margin_mm: float
) -> tuple[slice, slice, slice]:
    """The (z, y, x) box around the lung mask, widened by `margin_mm` and clipped to the array."""
    box = bounding_box(lungs)
    if box is None:
        raise ValueError("the lung mask is empty: no box to crop the classifier input to")
    return widened(box, np.ceil(margin_mm / np.asarray(spacing)).astype(int), lungs.shape)  # type: ignore[return-value]


def build_classifier_input(
    ct: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float], settings: ClassifierInputSettings = ClassifierInputSettings()
) -> np.ndarray:
    """The float32 tensor for the classifier from a CT in HU and its lung mask on the same (z, y, x) grid."""
    box = lung_bounding_box(lungs, spacing, settings.margin_mm)
    crop = ct[box].astype(np.float32, copy=False)
    nx, ny, nz = settings.size_xyz
    factors = np.array([nz, ny, nx]) / np.array(crop.shape)
    resized = ndimage.zoom(crop, factors, order=1, grid_mode=True, mode="nearest")
    if settings.fill_hu is not None:
        inside = ndimage.zoom((lungs[box] > 0).astype(np.float32), factors, order=1, grid_mode=True, mode="nearest") >= 0.5
        resized[~inside] = settings.fill_hu
    scaled = window_to_range(resized, settings.window_hu, settings.output_range)
    return to_layout(scaled, settings.layout)


def window_to_range(hu: np.ndarray, window: tuple[float, float], output_range: tuple[float, float]) -> np.ndarray:
    """Clip HU to the window and map it linearly onto the output range (float32)."""
    low, high = window
    out_low, out_high = output_range
    scaled = np.clip(hu, low, high)
    scaled -= low  # in place, in the order of out_low + (clipped - low) * scale: the same values, no temporaries
    scaled *= (out_high - out_low) / (high - low)
    scaled += out_low
    return scaled.astype(np.float32, copy=False)


def range_to_hu(values: np.ndarray, window: tuple[float, float], output_range: tuple[float, float]) -> np.ndarray:
    """Inverse of `window_to_range` (within the window)."""
    low, high = window
    out_low, out_high = output_range
    hu = values - out_low  # then in place, in the order of low + (values - out_low) * scale
    hu *= (high - low) / (out_high - out_low)
    hu += low
    return hu.astype(np.float32, copy=False)


def to_layout(zyx: np.ndarray, layout: tuple[str, ...]) -> np.ndarray:
    """A (z, y, x) array as a tensor with size-1 N and C axes, axes ordered as `layout`."""
    tensor = zyx[None, None]  # N, C, Z, Y, X
    source = ("N", "C", *AXES_ZYX)
    return np.ascontiguousarray(np.transpose(tensor, [source.index(axis) for axis in layout]))


def from_layout(tensor: np.ndarray, layout: tuple[str, ...]) -> np.ndarray:
    """The (z, y, x) volume of a single-sample, single-channel tensor in `layout`."""
    target = ("N", "C", *AXES_ZYX)
    return np.transpose(tensor, [layout.index(axis) for axis in target])[0, 0]
