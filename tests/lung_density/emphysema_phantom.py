"""Chest phantoms with emphysema-like blobs of known attenuation, for the lung-density pipeline's tests.

Built on the shared chest phantom (`make_phantom`: body, ribs, lungs at -860 HU, airways,
vessels) rendered without noise; the blobs are then added through the same kernel model
(in-plane Gaussian blur, unsharp masking for a sharp kernel; both linear, so blurring the
blobs' difference image and adding it equals rendering them with the chest) and the kernel's
noise is added last. Each blob is an ellipsoid of one attenuation between -980 and -920 HU
(levels cycle through `BLOB_HU`, so as much volume lies just above -950 HU as just below),
placed in a lung until `fraction` of its volume is covered, two thirds of them in its upper
half (centrilobular emphysema is upper-lobe predominant).

The truth is the object's: the share of each lung's voxels inside a blob whose attenuation is
below -950 HU (`truth_ra950`). Partial volume at the blobs' edges and noise are what a
measurement has to live with; the intrapulmonary part of the main bronchi (air inside the
lung label, about 0.2 % of a lung) is not counted as truth.

A sharp kernel's series says so in its header (ConvolutionKernel), as scanners write it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from dicom_node.pipeline.zones import ZONES, lung_zones
from phantoms.chest import KERNELS, LUNG_CENTRES_X, LUNG_CENTRE_YZ, LUNG_SEMI_AXES, Phantom, make_phantom, write_phantom_series

LUNG_HU = -860.0  # the shared phantom's parenchyma
# Levels at least 20 HU from the threshold: within +-10 HU of it noise and partial volume decide each voxel, and
# such blobs are a test of the kernel, not of the method (docs/validation.md gives both).
BLOB_HU = (-980.0, -920.0, -975.0, -925.0, -970.0, -930.0)
BLOB_RADII_MM = (15.0, 35.0)  # confluent emphysema and bullae, not single lobules
PARENCHYMA_TOLERANCE_HU = 20.0  # blobs replace plain parenchyma only: not vessels, their blurred edges or bronchi
SECTION_MM = "1"
HEADER_KERNEL = {"soft": "B30f", "standard": "B40f", "sharp": "B70f"}
SIDES = {"right": 1, "left": 2}


@dataclass(frozen=True)
class EmphysemaPhantom:
    """The chest phantom with blobs (its `hu` holds them), the blob map and the true RA-950 per lung and total."""

    phantom: Phantom
    blob_hu: np.ndarray  # float32 (z, y, x): the blob's attenuation where a blob lies, 0 elsewhere
    kernel: str

    @property
    def low_attenuation(self) -> np.ndarray:
        """The lung voxels whose object attenuation is below -950 HU."""
        return (self.blob_hu < -950.0) & (self.phantom.lungs > 0)

    @property
    def truth_ra950(self) -> dict[str, float]:
        lungs, low = self.phantom.lungs, self.low_attenuation
        shares = {side: 100.0 * float(low[lungs == label].sum()) / float((lungs == label).sum()) for side, label in SIDES.items()}
        shares["total"] = 100.0 * float(low.sum()) / float((lungs > 0).sum())
        return shares

    @property
    def truth_zone_ra950(self) -> dict[str, float]:
        """Per zone (thirds of each lung's height, as the pipeline's zones; the phantom's z grows to the head)."""
        zones, low = lung_zones(self.phantom.lungs), self.low_attenuation
        return {zone: 100.0 * float(low[zones == index].sum()) / float((zones == index).sum()) for index, zone in enumerate(ZONES)}

    @property
    def blob_percent(self) -> float:
        """The share of the lungs covered by blobs of any level."""
        return 100.0 * float(((self.blob_hu != 0) & (self.phantom.lungs > 0)).sum()) / float((self.phantom.lungs > 0).sum())


def make_emphysema_phantom(
    size_xyz: tuple[int, int, int] = (384, 384, 80), fraction: float = 0.1, *, kernel: str = "soft", seed: int = 0
) -> EmphysemaPhantom:
    """A chest phantom whose lungs are covered by emphysema-like blobs over `fraction` of their volume."""
    chest = make_phantom(size_xyz, 0.0, seed=seed, noise_hu=0.0, kernel=kernel)
    rng = np.random.default_rng(seed + 1000)
    blob_hu = np.zeros(chest.hu.shape, dtype=np.float32)
    for label in SIDES.values():
        _place_blobs(blob_hu, chest, label, fraction, rng)
    difference = np.where(blob_hu != 0, blob_hu - LUNG_HU, 0.0).astype(np.float32)
    blur, noise_hu, sharpen = KERNELS[kernel]
    hu = chest.hu.astype(np.float32)
    for k in np.flatnonzero(difference.any(axis=(1, 2))):
        hu[k] += _kernel_rendered(difference[k], blur, sharpen)
    hu += rng.normal(0.0, noise_hu, size=hu.shape).astype(np.float32)
    rendered = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return EmphysemaPhantom(replace(chest, hu=rendered), blob_hu, kernel)


def write_emphysema_series(phantom: EmphysemaPhantom, out_dir: Path, **kwargs: object) -> list[Path]:
    """The phantom as a CT series, each slice naming its reconstruction kernel as a Siemens scanner would.

    The phantom is rendered without blur along z, i.e. as thin sections (`SECTION_MM`) spaced by the slice
    spacing, and its headers say so: the profile's section-thickness condition then holds.
    """
    paths = write_phantom_series(phantom.phantom, out_dir, **kwargs)  # type: ignore[arg-type]
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.ConvolutionKernel = HEADER_KERNEL[phantom.kernel]
        ds.SliceThickness = SECTION_MM
        ds.save_as(path, enforce_file_format=True)
    return paths


def _kernel_rendered(image: np.ndarray, blur: float, sharpen: float) -> np.ndarray:
    """One slice through the phantom's kernel model (`phantoms.chest._render` without noise and rounding)."""
    blurred = ndimage.gaussian_filter(image, sigma=blur)
    return blurred + sharpen * (blurred - ndimage.gaussian_filter(blurred, sigma=2.0 * blur)) if sharpen else blurred


def _place_blobs(blob_hu: np.ndarray, chest: Phantom, label: int, fraction: float, rng: np.random.Generator) -> None:
    """Ellipsoids inside lung `label`, levels cycling through BLOB_HU, until `fraction` of the lung is covered."""
    lung = chest.lungs == label
    target = fraction * int(lung.sum())
    sp, org = np.asarray(chest.spacing), np.asarray(chest.origin)
    ax, ay, az = LUNG_SEMI_AXES
    cy, cz = LUNG_CENTRE_YZ
    covered, count = 0, 0
    while covered < target:
        upper = rng.uniform() < 2.0 / 3.0
        offset = rng.uniform(-0.7, 0.7, size=3) * np.array([az, ay, ax])
        offset[0] = abs(offset[0]) if upper else -abs(offset[0])
        centre = np.array([cz, cy, LUNG_CENTRES_X[label]]) + offset
        index = np.rint((centre - org) / sp).astype(int)
        if not (np.all(index >= 0) and np.all(index < lung.shape) and lung[tuple(index)]):
            continue
        radii = rng.uniform(*BLOB_RADII_MM, size=3)
        box, blob = _blob(chest, lung, blob_hu, centre, radii)
        remaining = target - covered
        if blob.sum() > 1.5 * remaining:  # the last blob no larger than what is left to cover, so 2 % stays 2 %
            box, blob = _blob(chest, lung, blob_hu, centre, radii * (remaining / blob.sum()) ** (1.0 / 3.0))
        blob_hu[box][blob] = BLOB_HU[count % len(BLOB_HU)]
        covered += int(blob.sum())
        count += 1


def _blob(
    chest: Phantom, lung: np.ndarray, blob_hu: np.ndarray, centre: np.ndarray, radii: np.ndarray
) -> tuple[tuple[slice, ...], np.ndarray]:
    """The ellipsoid's box and its voxels that are still plain parenchyma of the lung (no blob yet, no vessel)."""
    sp, org = np.asarray(chest.spacing), np.asarray(chest.origin)
    i0 = np.clip(np.floor((centre - radii - org) / sp).astype(int), 0, lung.shape)
    i1 = np.clip(np.ceil((centre + radii - org) / sp).astype(int) + 1, 0, lung.shape)
    box = tuple(slice(a, b) for a, b in zip(i0, i1))
    z, y, x = (org[k] + sp[k] * np.arange(i0[k], i1[k]) for k in range(3))
    inside = (
        ((z[:, None, None] - centre[0]) / radii[0]) ** 2
        + ((y[None, :, None] - centre[1]) / radii[1]) ** 2
        + ((x[None, None, :] - centre[2]) / radii[2]) ** 2
        <= 1.0
    )
    return box, inside & lung[box] & (blob_hu[box] == 0) & (np.abs(chest.hu[box] - LUNG_HU) <= PARENCHYMA_TOLERANCE_HU)
