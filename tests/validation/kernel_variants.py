"""Sharper and softer reconstructions of a real scan, from a documented MTF and noise model.

No raw projection data come with the shared scans, so a kernel change is modelled on the
reconstructed slices, in-plane (a kernel acts within the slice):

- softer, strength s (mm): the modulation transfer function is multiplied by a Gaussian,
  MTF'(f) = MTF(f) exp(-2 pi^2 s^2 f^2), i.e. each slice is convolved with a Gaussian of
  sigma s. Noise falls with it, as it does with a softer kernel.
- sharper, strength a: the MTF is boosted at high frequencies by unsharp masking,
  MTF'(f) = MTF(f) (1 + a (1 - exp(-2 pi^2 b^2 f^2))) with b = `BOOST_SCALE_MM`, which
  raises the scan's own noise by the same filter (kernel-correlated noise), and white noise
  of a x `ADDED_NOISE_HU` passed through the same boost is added: a sharp kernel's noise
  grows faster than its resolution, which the boost of the existing noise alone understates.

Strengths used by the validation (`STRENGTHS`): s = 0.4, 0.8, 1.2 mm (1.2 mm is about
what separates B30f from B60f in-plane) and a = 0.5, 1.0, 1.5.

Thicker sections (`thicker`) are modelled along z: the slice sensitivity profile becomes a
boxcar of the section thickness (what a scanner's thick reconstruction approximates),
sampled at the scan's own spacing (an overlapping reconstruction: the thickness changes, the
slice positions and count do not), the boxcar's end samples weighted by the part of them it
covers. It acts on the reconstructed slices, so the variant's profile is the boxcar convolved
with the scan's own section (a 2 mm scan made "4 mm" has a trapezoid 2 to 6 mm wide); the
thickness named is the boxcar's. Noise falls with it, as it does in thicker sections.

A scanner's CT numbers are calibrated on water, within a tolerance: ACR CT accreditation accepts
water at 0 +/- 7 HU, and vendors differ by a few HU in lung. `offset` shifts every voxel by a
whole number of HU, a scan from a scanner calibrated that far from the calibration scans'.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.volume import HU_MAX, HU_MIN, CtVolume

BOOST_SCALE_MM = 1.0
ADDED_NOISE_HU = 12.0
STRENGTHS = {"softer": (0.4, 0.8, 1.2), "sharper": (0.5, 1.0, 1.5)}


def softer(volume: CtVolume, sigma_mm: float) -> CtVolume:
    """The scan with its in-plane MTF multiplied by a Gaussian of `sigma_mm`."""
    sigma = (0.0, sigma_mm / volume.spacing[1], sigma_mm / volume.spacing[2])
    return _with_hu(volume, ndimage.gaussian_filter(volume.hu.astype(np.float32), sigma))


def sharper(volume: CtVolume, amount: float, seed: int = 0) -> CtVolume:
    """The scan with its high in-plane frequencies boosted by `amount` and boosted white noise added."""
    rng = np.random.default_rng(seed)
    image = volume.hu.astype(np.float32)
    image += rng.normal(0.0, amount * ADDED_NOISE_HU, size=image.shape).astype(np.float32)
    sigma = (0.0, BOOST_SCALE_MM / volume.spacing[1], BOOST_SCALE_MM / volume.spacing[2])
    image += amount * (image - ndimage.gaussian_filter(image, sigma))
    return _with_hu(volume, image)


def thicker(volume: CtVolume, thickness_mm: float) -> CtVolume:
    """The scan as if reconstructed in sections of `thickness_mm` (boxcar profile) at its own slice spacing."""
    return _with_hu(volume, ndimage.convolve1d(volume.hu.astype(np.float32), boxcar_weights(volume.spacing[0], thickness_mm), axis=0, mode="nearest"))


def offset(volume: CtVolume, hu: int) -> CtVolume:
    """The scan as a scanner whose CT numbers read `hu` higher would have given it."""
    return _with_hu(volume, volume.hu.astype(np.float32) + hu)


def boxcar_weights(spacing_mm: float, thickness_mm: float) -> np.ndarray:
    """Weights of the slices a boxcar `thickness_mm` wide, centred on a slice, covers at `spacing_mm` (sum 1)."""
    half = thickness_mm / 2.0 / spacing_mm  # in slices
    whole = int(np.floor(half + 0.5))
    weights = np.ones(2 * whole + 1)
    weights[0] = weights[-1] = half - (whole - 0.5)  # the part of the end slices inside the boxcar
    return weights / weights.sum()


def variants(volume: CtVolume) -> Iterator[tuple[str, CtVolume]]:
    """The six variants of `STRENGTHS`, one at a time, named like "softer 0.8 mm" and "sharper x1.0"."""
    for s in STRENGTHS["softer"]:
        yield f"softer {s:g} mm", softer(volume, s)
    for a in STRENGTHS["sharper"]:
        yield f"sharper x{a:.1f}", sharper(volume, a)


def _with_hu(volume: CtVolume, image: np.ndarray) -> CtVolume:
    return replace(volume, hu=np.clip(np.rint(image), HU_MIN, HU_MAX).astype(np.int16))
