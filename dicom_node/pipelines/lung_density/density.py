"""Lung densitometry figures from the CT's own voxels: RA-950, Perc15, lung volume and mean lung density.

The QIBA CT Lung Densitometry profile measures the lung's attenuation histogram on the
image as reconstructed: the voxels of the series' own grid inside the lung mask, without
any resampling or filtering (both would narrow the histogram and change every figure).
From that histogram, per lung, for both lungs and per zone:

- RA-950: the share of lung voxels strictly below -950 HU (relative area, in percent;
  "LAA%" or "emphysema index" elsewhere): destroyed alveolar walls leave air-filled spaces;
- Perc15 (AD-15, PD15): the 15th percentile of the lung histogram in HU, the smallest
  value at or below which at least 15 % of the lung voxels lie; it falls as emphysema
  spreads and is the profile's primary measure (less sensitive to noise than a threshold);
- lung volume (mL, voxel count x voxel volume) and mean lung density (HU).

All figures come from one integer histogram per (lung, zone) cell, built in one pass over
the lung voxels, so that the percentile is exact for integer HU and the zone, lung and
total figures always add up. Zones are thirds of each lung's head-feet extent
(`pipeline/zones.py`, shared with the COVID-19 pipeline's severity score), not lobes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicom_node.pipeline.lungs import LEFT, RIGHT
from dicom_node.pipeline.zones import ZONES, lung_zones

LOW_ATTENUATION_HU = -950  # RA-950: voxels strictly below this
PERCENTILE = 15.0  # Perc15
SIDES = {"right": RIGHT, "left": LEFT}


@dataclass(frozen=True)
class DensityFigures:
    """The densitometry of one region of the lungs (one lung, one zone or both lungs)."""

    voxels: int
    volume_ml: float
    ra950_percent: float  # 0..100; 0 for an empty region
    perc15_hu: float  # NaN for an empty region
    mean_hu: float  # NaN for an empty region

    def __post_init__(self) -> None:
        if self.voxels < 0 or self.volume_ml < 0:
            raise ValueError(f"negative size: {self.voxels} voxels, {self.volume_ml} mL")
        if not 0.0 <= self.ra950_percent <= 100.0:
            raise ValueError(f"RA-950 of {self.ra950_percent}% is not a share")
        if self.voxels and not (np.isfinite(self.perc15_hu) and np.isfinite(self.mean_hu)):
            raise ValueError("a region with voxels has a finite Perc15 and mean")


@dataclass(frozen=True)
class LungDensity:
    """Per lung ("right", "left"), both lungs ("total") and per zone ("upper", "middle", "lower", both lungs)."""

    lungs: dict[str, DensityFigures]
    zones: dict[str, DensityFigures]
    threshold_hu: int = LOW_ATTENUATION_HU
    percentile: float = PERCENTILE

    @property
    def total(self) -> DensityFigures:
        return self.lungs["total"]


def figures_of(histogram: np.ndarray, lowest_hu: int, voxel_ml: float, threshold_hu: int, percentile: float) -> DensityFigures:
    """The figures of one region from its histogram: `histogram[i]` voxels of value `lowest_hu + i` HU."""
    n = int(histogram.sum())
    if n == 0:
        return DensityFigures(0, 0.0, 0.0, float("nan"), float("nan"))
    values = lowest_hu + np.arange(histogram.size)
    below = int(histogram[: max(0, threshold_hu - lowest_hu)].sum())
    cumulative = np.cumsum(histogram)
    at_percentile = int(np.searchsorted(cumulative, n * percentile / 100.0 - 1e-9, side="left"))  # no rounding above the rank
    return DensityFigures(
        voxels=n,
        volume_ml=n * voxel_ml,
        ra950_percent=100.0 * below / n,
        perc15_hu=float(values[min(at_percentile, histogram.size - 1)]),
        mean_hu=float(histogram @ values) / n,
    )


def measure_density(
    hu: np.ndarray,
    labels: np.ndarray,
    voxel_ml: float,
    head_first: bool = True,
    threshold_hu: int = LOW_ATTENUATION_HU,
    percentile: float = PERCENTILE,
) -> LungDensity:
    """The densitometry of a CT in HU (z, y, x) within lung `labels` (1 right, 2 left) on the same grid.

    `head_first`: the z index grows towards the head (true for an axial series sorted along its normal
    with the usual orientation); otherwise the zones are counted from the other end.
    """
    if hu.shape != labels.shape:
        raise ValueError(f"CT of shape {hu.shape} and lung labels of shape {labels.shape}")
    oriented = labels if head_first else labels[::-1]
    zones = lung_zones(oriented)
    zones = zones if head_first else zones[::-1]
    inside = labels > 0
    values = hu[inside].astype(np.int32)
    if values.size == 0:
        empty = figures_of(np.zeros(1, dtype=np.int64), 0, voxel_ml, threshold_hu, percentile)
        return LungDensity(dict.fromkeys([*SIDES, "total"], empty), dict.fromkeys(ZONES, empty), threshold_hu, percentile)
    lowest = int(values.min())
    span = int(values.max()) - lowest + 1
    # one histogram per (lung, zone) cell: cell = (label - 1) * 3 + zone, counted in one bincount
    cells = (labels[inside].astype(np.int32) - 1) * len(ZONES) + zones[inside]
    counts = np.bincount(cells * span + (values - lowest), minlength=2 * len(ZONES) * span)
    per_cell = counts.reshape(2, len(ZONES), span)
    del counts, values, cells

    def figures(histogram: np.ndarray) -> DensityFigures:
        return figures_of(histogram, lowest, voxel_ml, threshold_hu, percentile)

    lungs = {side: figures(per_cell[label - 1].sum(axis=0)) for side, label in SIDES.items()}
    lungs["total"] = figures(per_cell.sum(axis=(0, 1)))
    zone_figures = {zone: figures(per_cell[:, index].sum(axis=0)) for index, zone in enumerate(ZONES)}
    return LungDensity(lungs, zone_figures, threshold_hu, percentile)


def low_attenuation_mask(hu: np.ndarray, labels: np.ndarray, threshold_hu: int = LOW_ATTENUATION_HU) -> np.ndarray:
    """The lung voxels below `threshold_hu` (bool): what RA-950 counts, for the SEG and the key image."""
    return (hu < threshold_hu) & (labels > 0)
