"""What a radiologist reads from an opacity mask besides its volume: distribution and severity.

All figures come from the opacity and high-opacity masks and the lung labels on one grid
(the model grid, where the quantification runs):

- bilateral: each lung holds at least `BILATERAL_MIN_ML` of opacity (a few voxels of
  either lung's partial volume do not make a finding bilateral);
- peripheral share: the part of the opacity volume in the outer third of its lung, by
  distance to the pleura (costal, diaphragmatic and mediastinal): a voxel is peripheral
  when its distance to the lung's boundary is at most a third of that lung's largest
  such distance. COVID-19 pneumonia is predominantly peripheral;
- zones: each lung is cut into upper, middle and lower thirds of its own head-feet
  extent (not the anatomical lobes, which the node does not segment); the zone
  distribution is the share of the opacity volume in each zone, both lungs together;
- ground glass vs consolidation: the share of the opacity volume in the high-opacity
  range (consolidation); the rest is ground glass;
- lesions: connected components of the opacity mask (26-neighbourhood), their number
  and the volume of the largest;
- lesion shape: per lesion, the spread of its voxels along its three principal axes (mm);
  its roundness is the shortest spread over the longest (1 for a ball, about 0.2 for a
  vessel-like streak). A rounded lesion is a ground-glass-predominant lesion of at least
  `SHAPE_MIN_ML` with roundness >= `ROUNDED_MIN` (P001's rounded patches: 0.62-0.66);
  a mass-like lesion is a compact (roundness >= `MASS_MIN_ROUNDNESS`) lesion of at least
  `MASS_MIN_ML` whose consolidation share is at least `MASS_MIN_SOLID_PERCENT` (the
  A0002 tumour on 8 mm slices: 76-80 mL, 36-38% consolidation, roundness 0.62-0.64;
  P001's lesions: 0-5% consolidation);
- the lung's own peripheral share: the share of the lung volume in its outer third (about
  50-56%), against which the opacity's peripheral share tells whether opacity is
  predominantly peripheral;
- the zone-based CT severity score: per zone (six: each lung's upper, middle and lower
  third) 0 none, 1 < 5%, 2 5-25%, 3 25-50%, 4 50-75%, 5 > 75% of the zone's lung
  volume involved; total 0-30. It follows the scoring of the lobe-based CT severity
  score (Pan et al., Radiology 2020, 0-25 over five lobes) on six zones instead of
  lobes, so the two are not interchangeable and results name it "zone-based".

The grid's z axis points to the head (canonical model grid), so the upper zone has the
highest z indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.boxes import bounding_box, label_boxes
from dicom_node.pipeline.depth import coarse_depth_mm, to_full_grid

from dicom_node.pipeline.lungs import LEFT, RIGHT
from dicom_node.pipeline.zones import ZONES, lung_zones

BILATERAL_MIN_ML = 1.0
SIDES = {"right": RIGHT, "left": LEFT}
SCORE_UPPER_BOUNDS = (25.0, 50.0, 75.0)  # percent, inclusive: 5..25 scores 2, up to 50 3, up to 75 4, above 5
PERIPHERAL_FRACTION = 1.0 / 3.0
DISTANCE_STEP = 3  # in-plane subsampling of the distance to the pleura (see `peripheral_region`)
SHAPE_MIN_ML = 1.0  # smaller lesions have too few voxels on the model grid for a shape
ROUNDED_MIN = 0.55
MASS_MIN_ML = 5.0  # about 2 cm across
MASS_MIN_ROUNDNESS = 0.5
MASS_MIN_SOLID_PERCENT = 25.0


@dataclass(frozen=True)
class OpacityPattern:
    """Distribution descriptors and the zone-based severity score; percentages 0..100."""

    bilateral: bool
    peripheral_percent: float  # share of the opacity volume in the outer third of each lung
    zone_distribution_percent: dict[str, float]  # "upper", "middle", "lower": share of the opacity volume
    consolidation_percent: float  # share of the opacity volume that is consolidation (high opacity)
    ground_glass_percent: float  # the rest: ground glass
    lesion_count: int
    largest_lesion_ml: float
    zone_involvement_percent: dict[str, float]  # "right upper" ... "left lower": opacity % of the zone's lung
    zone_scores: dict[str, int]  # same keys, 0..5
    zone_based_severity_score: int  # 0..30
    lung_peripheral_percent: float = 0.0  # share of the lung volume in its outer third (the reference for peripheral_percent)
    rounded_lesion_count: int = 0  # ground-glass lesions of rounded shape
    mass_like_lesion_count: int = 0  # compact lesions with a large consolidation share
    largest_mass_like_ml: float = 0.0


def zone_key(side: str, zone: str) -> str:
    return f"{side} {zone}"


def severity_of(involvement_percent: float) -> int:
    """One zone's score: 0 without opacity, 1 below 5%, then 2..5 by the bounds 25, 50, 75 percent."""
    if involvement_percent <= 0.0:
        return 0
    if involvement_percent < 5.0:
        return 1
    return 2 + int(np.searchsorted(SCORE_UPPER_BOUNDS, involvement_percent, side="left"))


def peripheral_region(labels: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Lung voxels in the outer third of their lung by distance to the lung boundary.

    The distance is computed per lung within its bounding box, on a grid subsampled
    in-plane by `DISTANCE_STEP` (a third of a lung's depth is about 2 cm, the coarse
    grid's step 5 mm): the exact transform on the full grid would cost more than the
    whole quantification.
    """
    out = np.zeros(labels.shape, dtype=bool)
    step = DISTANCE_STEP
    boxes = label_boxes(labels, max(RIGHT, LEFT))
    for label in (RIGHT, LEFT):
        box = boxes[label - 1]
        if box is None:
            continue
        lung = labels[box] == label
        coarse, depth = coarse_depth_mm(lung, spacing, step)
        peripheral = coarse & (depth <= PERIPHERAL_FRACTION * depth.max())
        out[box] |= to_full_grid(peripheral, lung.shape, step) & lung
    return out


def describe_opacity(
    opacity: np.ndarray, high_opacity: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float]
) -> OpacityPattern:
    """The pattern descriptors of an opacity mask (bool) within lung labels (1 right, 2 left) on one grid."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    opacity = opacity & (labels > 0)
    total = int(opacity.sum())
    # one bin per (lung, zone): label * 3 + zone for lung voxels (uint8: outside the lungs, where
    # the zone is -1, the sum wraps to 255 and falls in no bin); the grid-sized arrays are freed
    # before the peripheral region is measured, as this step runs beside the classifier
    bins = labels * np.uint8(3)
    bins += lung_zones(labels).view(np.uint8)
    lung_counts = np.array([np.count_nonzero(bins == index) for index in range(9)])  # bincount would widen bins to int64
    opacity_counts = np.bincount(bins[opacity], minlength=256)[:9]
    del bins
    involvement, scores = {}, {}
    for side, label in SIDES.items():
        for index, zone in enumerate(ZONES):
            key, n = zone_key(side, zone), int(lung_counts[label * 3 + index])
            involvement[key] = 100.0 * int(opacity_counts[label * 3 + index]) / n if n else 0.0
            scores[key] = severity_of(involvement[key])
    peripheral = peripheral_region(labels, spacing)
    lung_peripheral = 100.0 * int(np.count_nonzero(peripheral)) / max(int(lung_counts.sum()), 1)
    if not total:
        return OpacityPattern(
            False, 0.0, dict.fromkeys(ZONES, 0.0), 0.0, 0.0, 0, 0.0, involvement, scores, 0, lung_peripheral
        )
    per_zone = [int(opacity_counts[[RIGHT * 3 + i, LEFT * 3 + i]].sum()) for i in range(len(ZONES))]
    per_lung = {label: int(opacity_counts[label * 3 : label * 3 + 3].sum()) for label in SIDES.values()}
    box = bounding_box(opacity)
    components, count = ndimage.label(opacity[box], structure=np.ones((3, 3, 3), dtype=bool))
    consolidation = 100.0 * int((high_opacity & opacity).sum()) / total
    shapes = lesion_shapes(components, count, high_opacity[box], spacing)
    mass_like = shapes.mass_like()
    return OpacityPattern(
        bilateral=all(n * voxel_ml >= BILATERAL_MIN_ML for n in per_lung.values()),
        peripheral_percent=100.0 * int((opacity & peripheral).sum()) / total,
        zone_distribution_percent={zone: 100.0 * n / total for zone, n in zip(ZONES, per_zone)},
        consolidation_percent=consolidation,
        ground_glass_percent=100.0 - consolidation,
        lesion_count=count,
        largest_lesion_ml=int(np.bincount(components.ravel())[1:].max()) * voxel_ml,
        zone_involvement_percent=involvement,
        zone_scores=scores,
        zone_based_severity_score=sum(scores.values()),
        lung_peripheral_percent=lung_peripheral,
        rounded_lesion_count=int(shapes.rounded().sum()),
        mass_like_lesion_count=int(mass_like.sum()),
        largest_mass_like_ml=float(shapes.volume_ml[mass_like].max()) if mass_like.any() else 0.0,
    )


@dataclass(frozen=True)
class LesionShapes:
    """Per lesion (index = component label - 1): volume, consolidation share and roundness."""

    volume_ml: np.ndarray
    solid_percent: np.ndarray  # consolidation share of the lesion, 0..100
    roundness: np.ndarray  # shortest over longest principal spread, 0..1 (0 for lesions too small to tell)

    def rounded(self) -> np.ndarray:
        """Ground-glass-predominant lesions of rounded shape."""
        return (self.volume_ml >= SHAPE_MIN_ML) & (self.solid_percent < 50.0) & (self.roundness >= ROUNDED_MIN)

    def mass_like(self) -> np.ndarray:
        """Compact lesions of which a large share is consolidation: what a tumour looks like at this resolution."""
        return (
            (self.volume_ml >= MASS_MIN_ML)
            & (self.solid_percent >= MASS_MIN_SOLID_PERCENT)
            & (self.roundness >= MASS_MIN_ROUNDNESS)
        )


def lesion_shapes(
    components: np.ndarray, count: int, high_opacity: np.ndarray, spacing: tuple[float, float, float]
) -> LesionShapes:
    """Shape and consolidation share of each labelled lesion, from the first and second moments of its voxels (mm)."""
    labelled = np.flatnonzero(components)
    which = components.ravel()[labelled]
    voxels = np.bincount(which, minlength=count + 1)[1:].astype(float)
    solid = np.bincount(which, weights=high_opacity.ravel()[labelled], minlength=count + 1)[1:]
    coordinates = [axis * step for axis, step in zip(np.unravel_index(labelled, components.shape), spacing)]
    means = [np.bincount(which, weights=c, minlength=count + 1)[1:] / voxels for c in coordinates]
    covariance = np.empty((count, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            products = np.bincount(which, weights=coordinates[i] * coordinates[j], minlength=count + 1)[1:]
            covariance[:, i, j] = covariance[:, j, i] = products / voxels - means[i] * means[j]
    spread = np.sqrt(np.clip(np.linalg.eigvalsh(covariance), 0.0, None))  # ascending per lesion
    voxel_ml = float(np.prod(spacing)) / 1000.0
    volume_ml = voxels * voxel_ml
    roundness = np.where((volume_ml >= SHAPE_MIN_ML) & (spread[:, 2] > 0), spread[:, 0] / np.maximum(spread[:, 2], 1e-9), 0.0)
    return LesionShapes(volume_ml=volume_ml, solid_percent=100.0 * solid / voxels, roundness=roundness)
