"""Percentage of opacity (PO) and of high opacity (PHO) of the lungs, with the opacity mask.

PO is the share of lung volume taken by ground glass and consolidation (-700 to 100 HU
by default), PHO the share of consolidation (-200 to 100 HU). Counting every lung voxel
in that range measures anatomy, not disease: vessels, the hilum, airway walls and the
partial volume of the chest wall and diaphragm give a normal lung about 12%. So:

1. the CT is brought to one reference resolution and noise, measured from the image
   (`harmonise.py`), so that a soft kernel's blurred vessels and a sharp kernel's noise
   meet the filters below as the calibration scans did;
2. candidates are lung voxels in the opacity range;
3. seeds are the candidates deeper than `pleural_margin_mm` inside the lung (the rim
   is partial volume with the chest wall) that survive a morphological opening: dense
   candidates (consolidation range, where vessels lie) by a ball of `vessel_radius_mm`,
   hazy ones (ground glass, the partial-volume shell of vessels and airway walls) by a
   smaller ball of `ground_glass_opening_mm`, as those shells are thin, and without the
   thin bright voxels (`thin_bright_excess` above `hazy_seed_stop_hu`): a knot of vessels
   whose cores a few HU of calibration or a thicker section took below the dense range has
   no vessel shell, and its sleeves would join into a blob wider than the opening;
4. seed components smaller than `min_lesion_ml` are dropped, and so are those up to
   `tubular_max_lesion_ml` of which more than `tubular_max_fraction` is tubular (Frangi
   vesselness above `tubular_vesselness` at any of `tubular_scales_mm`): a hilar vessel's
   branching point or partial-volume sleeve survives the openings but is still a tube
   at the vessel's own scale, while a ground-glass nodule is a blob and a consolidation
   a blob or plate. The test runs per component in its own small box. It is off by
   default (`tubular_max_fraction` 1): per voxel, the surface of a blob larger than the
   scale has two negative curvatures like a tube, so round and subpleural consolidations
   of 4-19 mL were dropped whole, while with the harmonisation and the 3 mm ground-glass
   opening it no longer removes anything from the shared scans or their kernel variants;
5. faint ground glass too small for step 4 (about 1.2-2 cm) becomes a seed where the
   lung's mean attenuation at a lesion's scale stands out from the scan's parenchyma,
   unless the patch is a sleeve around a vessel (`focal_ground_glass`);
6. the seeds grow back within the candidates by the margin plus the ball radius in-plane
   and by `grow_along_z_mm` along z, so a lesion keeps its subpleural part and its own
   edge, while rims and vessels without a seed stay out; each step goes downhill only
   (`grow_uphill_hu`): a vessel beside a lesion rises again and is not followed; and no
   step enters a thin bright structure in the ground-glass range (`thin_bright_excess`): a vessel,
   fissure or partial-volume band that touches a lesion is narrower than the lesion and
   brighter than what surrounds it, which a soft kernel's blurred vessel (no vessel shell:
   below the dense range) still is. A small consolidation's rim is thin at that scale too,
   but above -200 HU: it is grown back.

Everything runs on the model grid (a few million voxels), not on the native series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.boxes import bounding_box, widened
from dicom_node.pipeline.harmonise import ImageQuality, harmonised
from dicom_node.pipeline.lungs import LEFT, RIGHT
from dicom_node.pipeline.settings import OpacitySettings
from dicom_node.pipelines.covid19.vesselness import vesselness_at

SMOOTHING_MM = 1.0  # without harmonisation (the baseline classifier's fixed filters)
BOX_MARGIN = 3  # voxels around the lungs: the smoothing's reach
IN_PLANE_SQUARE = np.ones((1, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Measurements:
    """Per-lung quantification (keys "left", "right", "total"); percentages of each lung's volume, `total` over both."""

    lung_volume_ml: dict[str, float]
    opacity_volume_ml: dict[str, float]
    opacity_percent: dict[str, float]  # PO 0..100
    high_opacity_percent: dict[str, float]  # PHO 0..100


@dataclass(frozen=True)
class OpacityMasks:
    """The opacity and its consolidation part (bool, on the CT's grid) and the image quality they were found at
    (None without harmonisation or without lungs)."""

    opacity: np.ndarray
    high_opacity: np.ndarray
    image_quality: ImageQuality | None


def opacity_masks(
    ct: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float], settings: OpacitySettings = OpacitySettings()
) -> OpacityMasks:
    """The opacity masks of a CT in HU (z, y, x) and its lung mask or labels.

    The work runs on the lungs' bounding box (plus a margin for the smoothing), about half
    of the grid.
    """
    opacity = np.zeros(lungs.shape, dtype=bool)
    high = np.zeros(lungs.shape, dtype=bool)
    lung_box = bounding_box(lungs)
    if lung_box is None:
        return OpacityMasks(opacity, high, None)
    box = widened(lung_box, BOX_MARGIN, lungs.shape)
    opacity[box], high[box], quality = _opacity_in_box(ct[box], lungs[box] > 0, spacing, settings)
    return OpacityMasks(opacity, high, quality)


def _opacity_in_box(
    ct: np.ndarray, lung: np.ndarray, spacing: tuple[float, float, float], settings: OpacitySettings
) -> tuple[np.ndarray, np.ndarray, ImageQuality | None]:
    quality: ImageQuality | None = None
    if settings.harmonisation.enabled:
        smooth, quality = harmonised(ct, lung, spacing, settings.harmonisation)
        smoothed_mm = max(quality.smoothing_mm, SMOOTHING_MM)
    else:
        smooth = ndimage.gaussian_filter(ct.astype(np.float32, copy=False), [SMOOTHING_MM / s for s in spacing])
        smoothed_mm = SMOOTHING_MM
    low, high = settings.opacity_hu
    candidate = lung & (smooth >= low) & (smooth <= high)
    core = ndimage.binary_erosion(lung, ellipsoid(settings.pleural_margin_mm, spacing))
    dense = candidate & (smooth >= settings.high_opacity_hu[0])
    dense_seeds = ndimage.binary_opening(dense & core, ellipsoid(settings.vessel_radius_mm, spacing))
    vessels = dense & ~dense_seeds
    vessel_shells = ndimage.binary_dilation(vessels, ellipsoid(settings.vessel_shell_mm, spacing))
    hazy = candidate & core & ~dense & ~vessel_shells
    growable = candidate
    if settings.growth_stop_hu is not None or settings.hazy_seed_stop_hu is not None:
        excess = thin_bright_excess(smooth, settings.growth_stop_width_mm, spacing)
        if settings.hazy_seed_stop_hu is not None:
            hazy &= excess <= settings.hazy_seed_stop_hu
        if settings.growth_stop_hu is not None:
            growable = candidate & ~((excess > settings.growth_stop_hu) & (smooth < settings.high_opacity_hu[0]))
        del excess  # a float array of the box: gone before the focal seeds' own
    seeds = dense_seeds | ndimage.binary_opening(hazy, ellipsoid(settings.ground_glass_opening_mm, spacing))
    seeds = drop_small_components(seeds, settings.min_lesion_ml / (float(np.prod(spacing)) / 1000.0))
    seeds = drop_tubular_components(seeds, smooth, smoothed_mm, spacing, settings)
    seeds |= focal_ground_glass(smooth, lung, candidate & core & ~vessel_shells, vessel_shells, spacing, settings)
    opacity = grow_within(
        seeds,
        growable,
        settings.pleural_margin_mm + settings.ground_glass_opening_mm,
        settings.grow_along_z_mm,
        spacing,
        downhill=None if settings.grow_uphill_hu is None else (smooth, settings.grow_uphill_hu),
    )
    consolidation_low, consolidation_high = settings.high_opacity_hu
    return opacity, opacity & (smooth >= consolidation_low) & (smooth <= consolidation_high), quality


def thin_bright_excess(image: np.ndarray, width_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """How far each voxel stands above the image's grey-level opening by a ball `width_mm` across (a white top-hat,
    HU): structures narrower than the ball that stand out from what surrounds them, at any HU.

    The opening keeps what the ball fits into (a lesion, the chest wall, the mediastinum) and takes away what it does
    not: vessels, fissures, airway walls, the partial-volume band of an obliquely cut diaphragm. A soft kernel blurs a
    1-2 mm vessel to about -400 HU, where HU ranges cannot tell it from ground glass, but it is still thin. The image
    outside the lung is left as it is, so a subpleural lesion is part of the wide chest wall, not a thin band in front
    of it. A ball, not a box: a box's corners do not reach into a round lesion's rim, which then passed for thin (the
    15% phantom lost 1,700 voxels of consolidation edge). A lesion not much wider than the ball has a thin rim too
    (its blurred core does not fill the ball), which is why the growth heeds this only below the consolidation range.
    About 0.2 s on P001's lungs.
    """
    return image - ndimage.grey_opening(image, footprint=ellipsoid(width_mm / 2.0, spacing))


def grow_within(
    seeds: np.ndarray,
    allowed: np.ndarray,
    reach_mm: float,
    reach_z_mm: float,
    spacing: tuple[float, float, float],
    downhill: tuple[np.ndarray, float] | None = None,
) -> np.ndarray:
    """`seeds` grown within `allowed` (geodesic dilation) by about `reach_mm` in-plane and `reach_z_mm` along z.

    One-voxel steps in all directions while a step fits into `reach_z_mm`, then in-plane
    steps up to `reach_mm`. The growth gives a lesion back its subpleural part and its own
    edge, which lie beside it in the slice. Along z the pleura and the diaphragm dome are
    cut obliquely, and their partial-volume band is in the opacity range: growing by the
    in-plane count in 3D (7.5 mm along z on the 2.5 mm grid) carried lesions along that
    band into three or four native slices above and below them (P001's basal lesion).

    With `downhill` (the image and a tolerance in HU) a step takes a voxel only where it is at most the
    tolerance brighter than the brightest grown voxel beside it: a lesion's own edge falls away from it,
    while a vessel running past it, or a partial-volume band, rises again. Without it, the growth
    followed the vessels beside the phantoms' nodules (4-16% of their vessel voxels counted).
    """
    step = min(spacing[1:])
    steps_3d = int(reach_z_mm // spacing[0] + 1e-9)
    steps_2d = max(0, int(round(reach_mm / step)) - steps_3d)
    if downhill is not None:
        steps = [(ellipsoid(spacing[0], spacing), steps_3d), (IN_PLANE_SQUARE, steps_2d)]
        return _grown_downhill(seeds, allowed, downhill, steps)
    grown = seeds
    if steps_3d:
        grown = ndimage.binary_dilation(grown, ellipsoid(spacing[0], spacing), iterations=steps_3d, mask=allowed)
    if steps_2d:
        grown = ndimage.binary_dilation(grown, IN_PLANE_SQUARE, iterations=steps_2d, mask=allowed)
    return grown


def _grown_downhill(
    seeds: np.ndarray, allowed: np.ndarray, downhill: tuple[np.ndarray, float], steps: list[tuple[np.ndarray, int]]
) -> np.ndarray:
    """`grow_within`'s steps, each taking the allowed neighbours no brighter than their brightest grown neighbour plus
    the tolerance. The brightest grown neighbour is looked up at the step's candidate voxels only (a shell of a few
    thousand), not filtered over the lungs."""
    image, tolerance = downhill
    grown = seeds.copy()
    for structure, count in steps:
        offsets = np.argwhere(structure) - np.array(structure.shape) // 2
        for _ in range(count):
            front = np.nonzero(ndimage.binary_dilation(grown, structure) & allowed & ~grown)
            if not front[0].size:
                break
            brightest = np.full(front[0].size, -np.inf, dtype=np.float32)
            for offset in offsets:
                near = tuple(np.clip(f + o, 0, n - 1) for f, o, n in zip(front, offset, grown.shape))
                brightest = np.maximum(brightest, np.where(grown[near], image[near], -np.inf))
            taken = image[front] <= brightest + tolerance
            grown[tuple(f[taken] for f in front)] = True
    return grown


def focal_ground_glass(
    smooth: np.ndarray,
    lung: np.ndarray,
    allowed: np.ndarray,
    vessel_shells: np.ndarray,
    spacing: tuple[float, float, float],
    settings: OpacitySettings,
) -> np.ndarray:
    """Seeds for faint ground glass too small for `min_lesion_ml`: lesion-scale excess attenuation.

    The local mean attenuation of the lung at `focal_scale_mm` (normalised convolution over
    the lung without the vessels and their shells, so neither the chest wall nor a vessel
    raises it) is compared with the scan's parenchyma (median of the non-dense lung): where
    it exceeds that by `focal_excess_hu`, an area of about a centimetre is hazy, which a
    thin vessel or airway wall alone does not make. Components of at least `focal_min_ml`
    of which at most `focal_max_vessel_contact` of the voxels touch a vessel shell are
    kept: at the hilum and along the blurred vessels of a soft kernel the excess is a
    sleeve around the vessels (normal001's hilum: 22 ml, the soft phantom's vessels: 14%
    of their volume, without this test), while a nodule touches a vessel at a few voxels.
    `allowed` is where a seed may lie (the core's hazy candidates); the growth that follows
    gives a subpleural patch its part in the pleural rim (P001's anterior left apex).

    Measured limits: a round nodule in clear lung is found from about 1.2 cm at -500 HU or
    1.4 cm at -600 HU (phantom of `tests/pipeline/test_opacity_growth_and_focal.py`);
    `focal_excess_hu` has a narrow working range on the shared series (140-160: at 130
    basal partial volume and at 170 the apical patch change P001's slice AUC to 0.91/0.92).
    """
    if settings.focal_excess_hu is None:
        return np.zeros_like(lung)
    sparse = (slice(None, None, 2), slice(None, None, 3), slice(None, None, 3))  # a median needs no every voxel
    sample = smooth[sparse][lung[sparse] & (smooth[sparse] < settings.high_opacity_hu[0])]
    if not sample.size:
        return np.zeros_like(lung)
    parenchyma = float(np.median(sample))
    # at a lesion's scale, 2 x 2 in-plane blocks (3.2 mm) lose nothing and cost a quarter; the
    # full-size float arrays are freed as soon as their block means exist (they run beside the
    # classifier, at the job's peak memory)
    sigma = [settings.focal_scale_mm / s for s in (spacing[0], 2 * spacing[1], 2 * spacing[2])]
    inside = lung & ~vessel_shells
    weighted = np.clip(smooth, -1000.0, settings.high_opacity_hu[0])
    weighted *= inside
    total = ndimage.gaussian_filter(block_mean_yx(weighted), sigma, truncate=3.0)
    del weighted
    norm = ndimage.gaussian_filter(block_mean_yx(inside.astype(np.float32)), sigma, truncate=3.0)
    del inside
    local_mean = np.divide(total, norm, out=np.full_like(total, -1000.0), where=norm > 0.05)
    raised = local_mean > parenchyma + settings.focal_excess_hu
    focal = allowed & np.repeat(np.repeat(raised, 2, axis=1), 2, axis=2)[:, : lung.shape[1], : lung.shape[2]]
    components, count = ndimage.label(focal)
    if count == 0:
        return focal
    sizes = np.bincount(components[focal], minlength=count + 1)  # the labelled voxels only: a tenth of the box
    contact = np.bincount(components[focal & next_to(vessel_shells)], minlength=count + 1)
    min_voxels = settings.focal_min_ml / (float(np.prod(spacing)) / 1000.0)
    keep = (sizes >= min_voxels) & (contact <= settings.focal_max_vessel_contact * sizes)
    keep[0] = False
    return keep[components]


def block_mean_yx(image: np.ndarray) -> np.ndarray:
    """Means of 2 x 2 in-plane blocks (an odd row or column is repeated), shape (z, ceil(y/2), ceil(x/2))."""
    _, ny, nx = image.shape
    padded = np.pad(image, ((0, 0), (0, ny % 2), (0, nx % 2)), mode="edge") if ny % 2 or nx % 2 else image
    total = padded[:, ::2, ::2] + padded[:, 1::2, ::2]
    total += padded[:, ::2, 1::2]
    total += padded[:, 1::2, 1::2]
    total *= 0.25
    return total


def next_to(mask: np.ndarray) -> np.ndarray:
    """Voxels that are in `mask` or share a face with it (a 6-neighbourhood dilation by slicing, no temporary structure)."""
    out = mask.copy()
    for axis in range(mask.ndim):
        low = [slice(None)] * mask.ndim
        high = [slice(None)] * mask.ndim
        low[axis], high[axis] = slice(None, -1), slice(1, None)
        out[tuple(low)] |= mask[tuple(high)]
        out[tuple(high)] |= mask[tuple(low)]
    return out


def drop_tubular_components(
    seeds: np.ndarray, smooth: np.ndarray, smoothed_mm: float, spacing: tuple[float, float, float], settings: OpacitySettings
) -> np.ndarray:
    """`seeds` without the components (up to `tubular_max_lesion_ml`) that are mostly tubular.

    `smooth` is the CT as smoothed by a Gaussian of about `smoothed_mm` (in-plane). Each component is tested in its
    bounding box plus a margin of three times the largest scale, so the cost follows the
    small components, not the lungs.
    """
    if settings.tubular_max_fraction >= 1.0 or not settings.tubular_scales_mm:
        return seeds
    components, count = ndimage.label(seeds)
    max_voxels = settings.tubular_max_lesion_ml / (float(np.prod(spacing)) / 1000.0)
    margin = [int(np.ceil(3.0 * max(settings.tubular_scales_mm) / s)) for s in spacing]
    kept = seeds.copy()
    for label, box in enumerate(ndimage.find_objects(components), start=1):
        component = components[box] == label
        if component.sum() > max_voxels:
            continue
        wide = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, seeds.shape))
        inside = components[wide] == label
        tubular = np.zeros(int(inside.sum()), dtype=bool)
        for scale in settings.tubular_scales_mm:
            tubular |= vesselness_at(smooth[wide], inside, spacing, scale, smoothed_mm) > settings.tubular_vesselness
        if tubular.mean() > settings.tubular_max_fraction:
            kept[wide] &= ~inside
    return kept


def measure_opacity(
    opacity: np.ndarray, high_opacity: np.ndarray, labels: np.ndarray, voxel_ml: float
) -> Measurements:
    """PO and PHO per lung (labels 1 right, 2 left) and in total, from masks on one grid."""
    regions = {"right": labels == RIGHT, "left": labels == LEFT, "total": labels > 0}
    po, pho, lung_ml, opacity_ml = {}, {}, {}, {}
    for name, region in regions.items():
        n = int(region.sum())
        n_opacity = int((opacity & region).sum())
        po[name] = 100.0 * n_opacity / n if n else 0.0
        pho[name] = 100.0 * int((high_opacity & region).sum()) / n if n else 0.0
        lung_ml[name] = n * voxel_ml
        opacity_ml[name] = n_opacity * voxel_ml
    return Measurements(lung_volume_ml=lung_ml, opacity_volume_ml=opacity_ml, opacity_percent=po, high_opacity_percent=pho)


def slice_opacity_fractions(opacity: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Per axial slice, the share of its lung area that is opacity (0 where a slice has no lung)."""
    lung_area = (lungs > 0).sum(axis=(1, 2))
    opacity_area = (opacity & (lungs > 0)).sum(axis=(1, 2))
    return np.divide(opacity_area, lung_area, out=np.zeros(len(lung_area)), where=lung_area > 0)


def ellipsoid(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """A ball of `radius_mm` as a structuring element on an anisotropic grid (at least one voxel)."""
    half = [max(0, int(radius_mm // s)) for s in spacing]
    z, y, x = np.ogrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1, -half[2] : half[2] + 1]
    r2 = (z * spacing[0]) ** 2 + (y * spacing[1]) ** 2 + (x * spacing[2]) ** 2
    ball = r2 <= radius_mm**2 + 1e-6
    if ball.sum() == 1:  # radius below the spacing: fall back to the 6-neighbourhood
        return ndimage.generate_binary_structure(3, 1)
    return ball


def drop_small_components(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """The mask without its connected components smaller than `min_voxels`."""
    components, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(components[mask], minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[components]

