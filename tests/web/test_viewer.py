"""Slice rendering and the volume cache, on small synthetic volumes whose answers are known."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from dicom_node.pipelines.covid19.manifest import OVERLAYS
from dicom_node.web.viewer import LruCache, ViewerError, ViewVolume, load_masks, render

HEAD_FIRST = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # slices from feet to head, the usual axial layout


def ramp_volume(z_towards_head: bool) -> ViewVolume:
    """HU rising with z from -1350 (black in the lung window) to 150 (white); 10 slices 3 mm apart, 1 mm pixels."""
    hu = np.repeat(np.linspace(-1350, 150, 10).astype(np.int16)[:, None, None], 40, axis=1).repeat(30, axis=2)
    direction = HEAD_FIRST if z_towards_head else HEAD_FIRST[:8] + (-1.0,)
    return ViewVolume(hu, (3.0, 1.0, 1.0), direction)


def grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(int)


def test_coronal_puts_the_head_on_top_and_stretches_to_square_pixels() -> None:
    image = grey(render(ramp_volume(z_towards_head=True), "coronal", 5, overlay=False))
    assert image.shape == (30, 30)  # 10 slices x 3 mm = 30 rows of 1 mm
    assert image[0].mean() > 250 and image[-1].mean() < 5  # the last slice (head end) is the top row
    flipped = grey(render(ramp_volume(z_towards_head=False), "coronal", 5, overlay=False))
    assert flipped[0].mean() < 5 and flipped[-1].mean() > 250


def test_edges_name_the_patient_sides() -> None:
    volume = ramp_volume(z_towards_head=True)
    assert volume.edges("axial") == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert volume.edges("coronal") == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    mirrored = ViewVolume(volume.hu, volume.spacing, (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    assert mirrored.edges("axial") == {"left": "L", "right": "R", "top": "P", "bottom": "A"}


def test_axial_positions_are_the_patient_z_of_each_slice() -> None:
    volume = ViewVolume(*[getattr(ramp_volume(z_towards_head=True), f) for f in ("hu", "spacing", "direction")], origin=(-100.0, 0.0, 0.0))
    assert volume.axial_positions() == [-100.0 + 3 * k for k in range(10)]
    feet_last = ViewVolume(volume.hu, volume.spacing, ramp_volume(z_towards_head=False).direction, origin=(-100.0, 0.0, 0.0))
    assert feet_last.axial_positions() == [-100.0 - 3 * k for k in range(10)]


def test_axial_window_maps_the_lung_window_onto_grey() -> None:
    volume = ramp_volume(z_towards_head=True)
    assert grey(render(volume, "axial", 0, overlay=False)).max() == 0  # -1350 HU: bottom of W1500/L-600
    assert grey(render(volume, "axial", 9, overlay=False)).min() == 255  # 150 HU: top
    assert grey(render(volume, "axial", 0, overlay=False)).shape == (40, 30)


def test_overlay_colours_where_the_masks_are() -> None:
    volume = ramp_volume(z_towards_head=True)
    labels = np.zeros(volume.hu.shape, dtype=np.uint8)
    labels[:, 5:15, 2:10] = 1
    labels[:, 5:15, 20:28] = 2
    opacity = np.zeros(volume.hu.shape, dtype=bool)
    opacity[:, 30:35, 10:20] = True
    masked = ViewVolume(volume.hu, volume.spacing, HEAD_FIRST, {"lung_labels": labels, "opacity_mask": opacity}, OVERLAYS)
    rgb = np.asarray(Image.open(io.BytesIO(render(masked, "axial", 4, overlay=True))).convert("RGB")).astype(int)
    assert rgb[10, 5, 1] > rgb[10, 5, 0] + 40  # right lung: green
    assert rgb[10, 24, 2] > rgb[10, 24, 0] + 40  # left lung: blue
    assert rgb[32, 15, 0] > rgb[32, 15, 1] + 40  # opacity: orange-red
    assert rgb[25, 15, 0] == rgb[25, 15, 1] == rgb[25, 15, 2]  # no mask: grey


def test_out_of_range_and_missing_masks() -> None:
    volume = ramp_volume(z_towards_head=True)
    with pytest.raises(IndexError):
        render(volume, "axial", 10, overlay=False)
    with pytest.raises(IndexError):
        render(volume, "coronal", 40, overlay=False)
    with pytest.raises(ViewerError, match="no masks"):
        render(volume, "axial", 0, overlay=True)


def test_masks_on_another_grid_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "masks.npz"
    np.savez_compressed(path, lung_labels=np.zeros((9, 40, 30), np.uint8), opacity_mask=np.zeros((9, 40, 30), bool))
    with pytest.raises(ViewerError, match="do not match"):
        load_masks(path, (10, 40, 30), ["lung_labels", "opacity_mask"])


def test_cache_loads_once_under_concurrent_requests_and_evicts_the_oldest() -> None:
    cache: LruCache[str] = LruCache(capacity=2)
    loads: list[str] = []

    def loader(key: str):  # type: ignore[no-untyped-def]
        def load() -> str:
            loads.append(key)
            time.sleep(0.05)
            return key.upper()

        return load

    threads = [threading.Thread(target=cache.get, args=("a", loader("a"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["a"]
    assert cache.get("b", loader("b")) == "B"
    assert cache.get("a", loader("a")) == "A"  # still cached; now the most recent
    cache.get("c", loader("c"))  # evicts b
    cache.get("b", loader("b"))
    assert loads == ["a", "b", "c", "b"]


def test_cache_does_not_keep_a_failed_load() -> None:
    cache: LruCache[int] = LruCache(capacity=2)

    def fail() -> int:
        raise ViewerError("unreadable")

    with pytest.raises(ViewerError):
        cache.get("x", fail)
    assert cache.get("x", lambda: 7) == 7
