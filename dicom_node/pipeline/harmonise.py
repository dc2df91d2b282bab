"""Kernel harmonisation measured from the image: every scan brought to one resolution and noise.

A reconstruction kernel changes what the opacity filters see. A soft kernel (B30f, GE
STANDARD) spreads each vessel into a wider, fainter sleeve in the ground-glass range; a
sharp one (B70f, LUNG) leaves the edges crisp but adds noise that breaks faint ground glass
into speckle. Kernel names do not say how sharp a kernel is (every vendor names its own), so
both properties are measured in the lungs of the scan itself, on the model grid the filters
run on:

- noise: the robust spread (1.4826 x median absolute deviation) of the CT minus its own
  in-plane Gaussian at `NOISE_SCALE_MM`, over the lung core's parenchyma. Vessels are a
  minority of those voxels, so the median ignores them; the fine-scale residual of
  parenchyma is mostly quantum noise and the kernel's shaping of it.
- sharpness: the 10-90 % width of the air / soft-tissue edges (the costal pleura, the
  body outline) whose normal lies in the slice plane. For a Gaussian-blurred step of
  height D the steepest gradient is D / (sqrt(2 pi) sigma), so the width D / gradient is
  sqrt(2 pi) sigma (2.51 sigma; the 10-90 % rise is 2.56 sigma). Each edge point's profile
  is read along its gradient (linear interpolation) and its 10-90 % width measured. Its step
  height is read from the image 6 mm either side along its gradient and only lung-or-air
  to soft-tissue steps are kept, so ribs and vessels do not count; the median over
  thousands of points is the scan's edge spread. Edges cut obliquely by thick slices are
  left out (their normal leaves the plane), so slice thickness does not pass for a kernel.

Then the scan is smoothed in-plane to the reference edge spread (Gaussians compose:
sigma_extra^2 = sigma_ref^2 - sigma_scan^2; a scan already softer is not sharpened, which
noise forbids) and, if its noise at that resolution is still above the reference, smoothed
further until it reaches the reference, up to `max_smoothing_mm`. The reference is the resolution and noise of the
scans the filters were calibrated on (Siemens D40s on this grid with the former fixed 1 mm
smoothing), so for them harmonisation changes nothing. What is left above the reference
after the cap, and a noise that at the reference resolution says "very low dose", are
reported (`ImageQuality`), never hidden: the opacity of such a scan is less certain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.fitness import FitnessFlag
from dicom_node.pipeline.settings import HarmonisationSettings

NOISE_SCALE_MM = 2.0
EDGE_REACH_MM = 6.0  # where each edge's two sides are read: beyond the widest edge spread expected (2.3 sigma at 2.5 mm)
EDGE_DERIVATIVE_MM = 0.8  # the Gaussian the gradient is taken at (noise would otherwise make edges look sharp)
PARENCHYMA_HU = -600.0  # lung voxels below this are parenchyma for the noise estimate
LOW_SIDE_HU = -700.0  # an edge's dark side: aerated lung or air
SOFT_TISSUE_HU = (-150.0, 150.0)  # an edge's bright side: chest wall, fat, muscle, skin
MIN_EDGE_POINTS = 200
Z_SMOOTHING_MM = 1.0  # along z every scan keeps the former fixed smoothing (slice thickness is a fitness question)
SQRT_2PI = math.sqrt(2.0 * math.pi)
NOISE_STEP_MM = 0.15
PROFILE_STEP_MM = 0.4


@dataclass(frozen=True)
class ImageQuality:
    """How sharp and noisy the scan's lungs are, and what harmonisation did about it.

    `noise_hu` and `edge_spread_mm` are measured on the model grid as the scan came;
    `smoothing_mm` is the in-plane Gaussian applied; `residual_noise_hu` is the noise
    measured after it. `harmonised` says that both the reference resolution and noise were
    reached. `noisy_after_harmonisation`: the noise stays above the reference by more than
    the tolerance even at the smoothing cap (a sharp kernel at a low dose);
    `very_low_dose`: at the reference resolution the noise is that of a very low dose.
    `header_kernel` is the series' ConvolutionKernel, shown for a reader, never used.
    """

    noise_hu: float
    edge_spread_mm: float
    smoothing_mm: float
    residual_noise_hu: float
    noise_at_reference_resolution_hu: float
    harmonised: bool
    noisy_after_harmonisation: bool
    very_low_dose: bool
    header_kernel: str = ""


def harmonised(
    ct: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float], settings: HarmonisationSettings
) -> tuple[np.ndarray, ImageQuality]:
    """(the CT smoothed to the reference resolution and noise as float32, what was measured and done).

    `ct` (HU, z, y, x) and the bool `lung` share a grid of `spacing` mm.
    """
    image = ct.astype(np.float32, copy=False)
    parenchyma = ndimage.binary_erosion(lung, np.ones((1, 5, 5), dtype=bool)) & (image < PARENCHYMA_HU)
    noise = fine_noise_hu(image, parenchyma, spacing)
    edge = edge_spread_mm(image, spacing)
    sigma_ref = settings.reference_edge_spread_mm / SQRT_2PI
    sigma_scan = sigma_ref if math.isnan(edge) else edge / SQRT_2PI  # no edge to measure: taken as the reference
    sigma_cap = settings.max_smoothing_mm
    resolution_step = math.sqrt(max(sigma_ref**2 - sigma_scan**2, 0.0))
    smooth = _smoothed(image, resolution_step, spacing)
    at_reference = fine_noise_hu(smooth, parenchyma, spacing)
    step, residual = resolution_step, at_reference
    noise_limit = settings.reference_noise_hu * (1.0 + settings.noise_tolerance)
    # down to the reference itself, in steps of NOISE_STEP_MM, each measured: the fine-scale noise of a
    # kernel-correlated noise does not fall by a law one could predict it with (1/sigma overshot B70f by 0.6 mm).
    # The tolerance only says when a scan that stays above it at the cap is flagged: stopping at the tolerance's
    # edge left sharp kernels up to 25% noisier than the calibration scans, and noise breaks faint ground glass
    # into speckle (P001's sharpest variant read 15% low, A0002 B70f 12% below B40f; docs/validation.md)
    while residual > settings.reference_noise_hu and step < sigma_cap:
        step = min(step + NOISE_STEP_MM, sigma_cap)
        smooth = _smoothed(image, step, spacing)
        residual = fine_noise_hu(smooth, parenchyma, spacing)
    noisy = residual > noise_limit
    sharp_enough = sigma_scan <= sigma_ref * (1.0 + settings.resolution_tolerance)
    quality = ImageQuality(
        noise_hu=round(noise, 2),
        edge_spread_mm=round(edge, 3),
        smoothing_mm=round(step, 3),
        residual_noise_hu=round(residual, 2),
        noise_at_reference_resolution_hu=round(at_reference, 2),
        harmonised=sharp_enough and not noisy,
        noisy_after_harmonisation=noisy,
        very_low_dose=at_reference > settings.very_low_dose_noise_hu,
    )
    return smooth, quality


def _smoothed(image: np.ndarray, in_plane_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    return ndimage.gaussian_filter(image, [Z_SMOOTHING_MM / spacing[0], in_plane_mm / spacing[1], in_plane_mm / spacing[2]])


def fine_noise_hu(image: np.ndarray, where: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Robust spread of `image` minus its in-plane Gaussian at `NOISE_SCALE_MM`, at the voxels of `where`.

    Only the box around `where` is filtered. 0 when `where` is empty.
    """
    box = ndimage.find_objects(where.view(np.uint8), max_label=1)[0] if where.any() else None
    if box is None:
        return 0.0
    wide = tuple(slice(max(0, b.start - 4), b.stop + 4) if k else b for k, b in enumerate(box))
    part = image[wide]
    residual = part - ndimage.gaussian_filter(part, [0.0, NOISE_SCALE_MM / spacing[1], NOISE_SCALE_MM / spacing[2]])
    values = residual[where[wide]]
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def edge_spread_mm(image: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Median 10-90 % width (mm) of the in-plane air / soft-tissue edges of `image` (see the module's docstring).

    Every other slice is enough (thousands of edge points each). Returns NaN when fewer than
    `MIN_EDGE_POINTS` edge points are found (no body in the image).
    """
    step = 2 if image.shape[0] >= 8 else 1
    sub = image[::step]
    sy, sx = spacing[1], spacing[2]
    smooth = ndimage.gaussian_filter(sub, [0.0, EDGE_DERIVATIVE_MM / sy, EDGE_DERIVATIVE_MM / sx])
    gy = np.gradient(smooth, sy, axis=1)
    gx = np.gradient(smooth, sx, axis=2)
    gz = np.gradient(smooth, spacing[0] * step, axis=0) if sub.shape[0] > 1 else np.zeros_like(smooth)
    g = np.hypot(gy, gx)
    z, y, x = np.nonzero((smooth > -600.0) & (smooth < -300.0) & (g > 50.0) & (np.abs(gz) < 0.3 * g))
    if z.size < MIN_EDGE_POINTS:
        return float("nan")
    g0 = g[z, y, x]
    uy, ux = gy[z, y, x] / g0, gx[z, y, x] / g0

    def along(values: np.ndarray, mm: float) -> np.ndarray:
        return ndimage.map_coordinates(values, [z, y + uy * mm / sy, x + ux * mm / sx], order=1, mode="nearest")

    peak = (g0 >= along(g, EDGE_DERIVATIVE_MM)) & (g0 >= along(g, -EDGE_DERIVATIVE_MM))
    low, high = along(smooth, -EDGE_REACH_MM), along(smooth, EDGE_REACH_MM)
    step_edge = peak & (low < LOW_SIDE_HU) & (high > SOFT_TISSUE_HU[0]) & (high < SOFT_TISSUE_HU[1])
    if step_edge.sum() < MIN_EDGE_POINTS:
        return float("nan")
    z, y, x, uy, ux = z[step_edge], y[step_edge], x[step_edge], uy[step_edge], ux[step_edge]
    offsets = np.arange(-EDGE_REACH_MM, EDGE_REACH_MM + 1e-6, PROFILE_STEP_MM)
    profiles = np.stack([along(smooth, mm) for mm in offsets], axis=1)
    rise = (profiles - profiles[:, :1]) / (profiles[:, -1:] - profiles[:, :1])
    width = float(np.median(_crossing_mm(rise, 0.9, offsets) - _crossing_mm(rise, 0.1, offsets)))
    # the 10-90 % width of a Gaussian edge is 2.563 sigma; the derivative's Gaussian and linear interpolation
    # between grid voxels (a triangle of variance h^2 / 6, averaged over where edges fall) are taken out
    h2 = sy * sx
    sigma2 = (width / 2.563) ** 2 - EDGE_DERIVATIVE_MM**2 - h2 / 6.0
    return SQRT_2PI * math.sqrt(max(sigma2, 0.0))


def _crossing_mm(rise: np.ndarray, level: float, offsets: np.ndarray) -> np.ndarray:
    """Per profile (row of `rise`, 0 at the dark end, 1 at the bright end), where it first reaches `level` (mm)."""
    first = np.argmax(rise >= level, axis=1).clip(1, len(offsets) - 1)
    rows = np.arange(len(rise))
    before, after = rise[rows, first - 1], rise[rows, first]
    fraction = np.clip((level - before) / np.where(after > before, after - before, 1.0), 0.0, 1.0)
    return offsets[first - 1] + fraction * (offsets[1] - offsets[0])


def quality_flags(quality: ImageQuality, settings: HarmonisationSettings) -> list[FitnessFlag]:
    """The fitness flags image quality raises: still noisy after harmonisation, and a very low dose."""
    flags = []
    noise_limit = settings.reference_noise_hu * (1.0 + settings.noise_tolerance)
    if quality.noisy_after_harmonisation and quality.residual_noise_hu > noise_limit:
        flags.append(
            FitnessFlag(
                "NOISYKERNEL",
                "Still noisy after kernel harmonisation",
                f"the lung noise is {quality.residual_noise_hu:.1f} HU after the largest smoothing allowed "
                f"({quality.smoothing_mm:g} mm; {quality.noise_hu:.1f} HU as received, edge spread "
                f"{quality.edge_spread_mm:.2f} mm), above the {noise_limit:.1f} HU the method was validated at: "
                "noise breaks faint ground glass into speckle, so opacity tends to be under-counted",
                quality.residual_noise_hu,
                noise_limit,
                "[hnsf'U]",
            )
        )
    if quality.very_low_dose and quality.noise_at_reference_resolution_hu > settings.very_low_dose_noise_hu:
        flags.append(
            FitnessFlag(
                "LOWDOSE",
                "Very low dose",
                f"at the reference resolution the lung noise is {quality.noise_at_reference_resolution_hu:.1f} HU, "
                f"above {settings.very_low_dose_noise_hu:g} HU: a very low dose scan, whose faint ground glass and "
                "small lesions the method may miss",
                quality.noise_at_reference_resolution_hu,
                settings.very_low_dose_noise_hu,
                "[hnsf'U]",
            )
        )
    return flags
