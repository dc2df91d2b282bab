"""Slices of a job's CT with its masks, as PNG images for the viewer.

The CT is built from the series' stored instance files by the pipeline's own
`load_series` with the pipeline's configured selection and load rules (so it is the
grid the masks were made on), the masks read from the
job's `masks.npz` and drawn as the job's result manifest lists its overlays; both are kept in a
small LRU cache so that scrolling through slices costs one window, one blend and
one PNG encode per image (a few milliseconds), not a series load (seconds).
Images are drawn in the lung window (W1500/L-600); coronal images are stretched
to square pixels using the slice spacing and shown with the head at the top.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np
from PIL import Image

from dicom_node.pipeline.volume import CtVolume
from dicom_node.pipelines.manifest import Overlay

WINDOW_WIDTH, WINDOW_LEVEL = 1500, -600
Plane = Literal["axial", "coronal"]


class ViewerError(Exception):
    """The job's images cannot be shown; the message says why."""


@dataclass(frozen=True)
class ViewVolume:
    """A CT in (z, y, x) with its spacing in mm, its direction (`CtVolume.direction`: row-major 3x3 whose
    columns are the LPS directions of the x, y, z axes) and, when the job made them, its masks on the same grid
    (arrays by name, as the masks file holds them) with the overlays drawn from them, in drawing order."""

    hu: np.ndarray
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    masks: Mapping[str, np.ndarray] | None = None
    overlays: tuple[Overlay, ...] = field(default=())
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (z, y, x) LPS of voxel [0, 0, 0], as `CtVolume.origin`

    def slice_count(self, plane: Plane) -> int:
        return int(self.hu.shape[0] if plane == "axial" else self.hu.shape[1])

    @property
    def z_towards_head(self) -> bool:
        """True when slice index grows towards the head (+z in LPS): coronal images are then flipped to put it on top."""
        return self.direction[8] > 0

    def axial_positions(self) -> list[float]:
        """The patient z (LPS, mm; larger is nearer the head) of each axial slice, as PACS viewers label slices."""
        step = self.spacing[0] * self.direction[8]
        return [round(self.origin[0] + k * step, 2) for k in range(self.hu.shape[0])]

    def edges(self, plane: Plane) -> dict[str, str]:
        """The patient side at each edge of a rendered image (R/L, A/P, S/I), from the direction's dominant signs."""
        left, right = ("R", "L") if self.direction[0] > 0 else ("L", "R")
        if plane == "coronal":
            return {"left": left, "right": right, "top": "S", "bottom": "I"}
        top, bottom = ("A", "P") if self.direction[4] > 0 else ("P", "A")
        return {"left": left, "right": right, "top": top, "bottom": bottom}


def view_of(volume: CtVolume) -> ViewVolume:
    """The viewer's part of a pipeline volume; refused when its voxels have no size to draw them at."""
    if not all(math.isfinite(size) and size > 0 for size in volume.spacing):
        raise ViewerError(
            f"voxel size {volume.spacing} mm (slice spacing, then PixelSpacing rows and columns) is not positive: "
            "the images cannot be drawn to scale"
        )
    return ViewVolume(volume.hu, volume.spacing, volume.direction, origin=volume.origin)


def load_masks(path: Path, shape: tuple[int, ...], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays `names` from a job's masks.npz, checked against the CT's grid."""
    try:
        with np.load(path) as masks:
            arrays = {name: masks[name] for name in dict.fromkeys(names)}
    except (OSError, KeyError, ValueError) as exc:
        raise ViewerError(f"masks file {path.name} unreadable: {exc}") from exc
    for array in arrays.values():
        if array.shape != shape:
            raise ViewerError(f"masks {array.shape} do not match the CT volume {shape}: the series changed after the job ran")
    return arrays


def window(hu: np.ndarray) -> np.ndarray:
    low = WINDOW_LEVEL - WINDOW_WIDTH / 2
    scaled = (hu.astype(np.float32) - low) * (255.0 / WINDOW_WIDTH)
    return np.clip(scaled, 0, 255)


def render(volume: ViewVolume, plane: Plane, index: int, overlay: bool) -> bytes:
    """One slice as PNG: grey lung window, optionally with the masks blended in their colours."""
    if not 0 <= index < volume.slice_count(plane):
        raise IndexError(f"{plane} slice {index} outside 0..{volume.slice_count(plane) - 1}")
    pick: Callable[[np.ndarray], np.ndarray]
    if plane == "axial":
        pick = lambda array: array[index]  # noqa: E731
        pixel_height, pixel_width = volume.spacing[1], volume.spacing[2]
    else:
        flip = volume.z_towards_head
        pick = lambda array: array[::-1, index, :] if flip else array[:, index, :]  # noqa: E731
        pixel_height, pixel_width = volume.spacing[0], volume.spacing[2]
    grey = window(pick(volume.hu))
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    if overlay:
        if volume.masks is None or not volume.overlays:
            raise ViewerError("this job has no masks to overlay")
        for drawn in volume.overlays:
            values = pick(volume.masks[drawn.array])
            mask = values != 0 if drawn.value is None else values == drawn.value
            rgb[mask] = rgb[mask] * (1 - drawn.alpha) + np.asarray(drawn.rgb, dtype=np.float32) * drawn.alpha
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    height = round(image.height * pixel_height / pixel_width)
    if height != image.height:
        image = image.resize((image.width, max(height, 1)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


T = TypeVar("T")


class LruCache(Generic[T]):
    """A few loaded volumes by key; concurrent requests for one key load it once (the slider fires many at once)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                value = load()
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self._items[key] = value
                self._loading.pop(key, None)
                while len(self._items) > self.capacity:
                    self._items.popitem(last=False)
            return value
