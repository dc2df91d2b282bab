"""Multi-scale Hessian vesselness (Frangi et al., MICCAI 1998), evaluated only where asked.

A bright tube has one Hessian eigenvalue near zero (along the tube) and two large
negative ones; a blob (a round nodule) three negative ones of similar size; a plate (a
subpleural band) one large negative one. Frangi's measure is high for tubes only:

    V = (1 - exp(-Ra^2 / 2a^2)) * exp(-Rb^2 / 2b^2) * (1 - exp(-S^2 / 2c^2))   if l2, l3 < 0, else 0

with Ra = |l2|/|l3| (plate vs line), Rb = |l1|/sqrt(|l2 l3|) (blob vs line), S the
Frobenius norm of the scale-normalised Hessian (sigma^2 H: structure vs flat noise).

The whole-volume filters of scikit-image or SimpleITK compute all six second derivatives
and the eigen-decomposition at every voxel; here the image is smoothed once per scale
and the Hessian is taken by central differences at the given points only, and its
eigenvalues in closed form, which costs a few percent of that.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

ALPHA = 0.5
BETA = 0.5
C_HU = 60.0  # structure term scale, HU (scale-normalised second derivative)


def vesselness_at(
    image: np.ndarray, points: np.ndarray, spacing: tuple[float, float, float], sigma_mm: float, smoothed_mm: float = 0.0
) -> np.ndarray:
    """Frangi vesselness (bright tubes) of `image` at scale `sigma_mm`, at the voxels where `points` is True.

    `smoothed_mm` is the Gaussian the image already carries; only the difference is added.
    Returns one value per True voxel of `points`, in C order.
    """
    extra = max(sigma_mm**2 - smoothed_mm**2, 0.0) ** 0.5
    smoothed = ndimage.gaussian_filter(image, [extra / s for s in spacing]) if extra > 0 else image
    eigenvalues = symmetric_eigenvalues(*(h * sigma_mm**2 for h in hessian_at(smoothed, np.nonzero(points), spacing)))
    l1, l2, l3 = eigenvalues
    ra = np.abs(l2) / (np.abs(l3) + 1e-6)
    rb = np.abs(l1) / np.sqrt(np.abs(l2 * l3) + 1e-6)
    s2 = l1**2 + l2**2 + l3**2
    v = (1 - np.exp(-(ra**2) / (2 * ALPHA**2))) * np.exp(-(rb**2) / (2 * BETA**2)) * (1 - np.exp(-s2 / (2 * C_HU**2)))
    v[(l2 > 0) | (l3 > 0)] = 0.0
    return v


def hessian_at(
    image: np.ndarray, points: tuple[np.ndarray, ...], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, ...]:
    """(Hzz, Hyy, Hxx, Hzy, Hzx, Hyx) by central differences at the index arrays `points` (edges clamped)."""
    z, y, x = points
    shape = image.shape

    def at(dz: int, dy: int, dx: int) -> np.ndarray:
        return image[np.clip(z + dz, 0, shape[0] - 1), np.clip(y + dy, 0, shape[1] - 1), np.clip(x + dx, 0, shape[2] - 1)]

    centre = 2.0 * at(0, 0, 0)
    sz, sy, sx = spacing
    return (
        (at(1, 0, 0) - centre + at(-1, 0, 0)) / sz**2,
        (at(0, 1, 0) - centre + at(0, -1, 0)) / sy**2,
        (at(0, 0, 1) - centre + at(0, 0, -1)) / sx**2,
        (at(1, 1, 0) - at(1, -1, 0) - at(-1, 1, 0) + at(-1, -1, 0)) / (4 * sz * sy),
        (at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)) / (4 * sz * sx),
        (at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)) / (4 * sy * sx),
    )


def symmetric_eigenvalues(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray, f: np.ndarray
) -> np.ndarray:
    """Eigenvalues of the symmetric matrices [[a, d, e], [d, b, f], [e, f, c]], shape (3, n), sorted by |value|.

    Closed form (trigonometric solution of the characteristic cubic), vectorised.
    """
    q = (a + b + c) / 3.0
    p1 = d * d + e * e + f * f
    p = np.sqrt(((a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2.0 * p1) / 6.0) + 1e-12
    ba, bb, bc, bd, be, bf = (a - q) / p, (b - q) / p, (c - q) / p, d / p, e / p, f / p
    determinant = ba * (bb * bc - bf * bf) - bd * (bd * bc - bf * be) + be * (bd * bf - bb * be)
    phi = np.arccos(np.clip(determinant / 2.0, -1.0, 1.0)) / 3.0
    largest = q + 2.0 * p * np.cos(phi)
    smallest = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    values = np.stack([largest, 3.0 * q - largest - smallest, smallest])
    return np.take_along_axis(values, np.argsort(np.abs(values), axis=0), axis=0)
