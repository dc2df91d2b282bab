"""Classical lung segmentation on a coarse grid, and the left/right split of any binary lung mask.

Input is a CT on a canonical grid (array axes x -> patient left, y -> posterior,
z -> head, i.e. LPS with an identity direction) of known spacing, as produced by
`resample.to_model_grid`. Steps, each a small function:

1. body: tissue (> -500 HU) connected to the largest blob, holes filled per slice;
2. air inside the body (< -400 HU);
3. trachea and main bronchi: their lumen (< -950 HU, darker than lung parenchyma, so
   partial volume at the carina does not join them to the lung) is tracked slice by
   slice from the top of the scan, through the blobs that overlap the slice above, while
   the cross-section stays small; once a bronchus
   merges with lung its area jumps and tracking stops, so the airway tree inside the
   lung stays part of the lung; the tracked airways and a 2-voxel wall are kept out of
   the aerated lung and out of step 5's fill (the hull of a lung that reaches around a
   main bronchus at the hilum covered it: 11 ml of P001's bronchi were in its lung mask);
4. lung components: the large air components left (bowel gas at the bottom is dropped);
5. dense lung: per slice and per lung, the convex hull of the aerated lung is added,
   except where it would cover the mediastinum (between the two lungs), the liver
   under the diaphragm dome (no aerated lung below in that column) or the outside of
   the body. This keeps vessels and consolidations at the pleura, which a plain air
   threshold loses.

Why a hull and not a closing: a subpleural consolidation is a bay in the aerated lung
as wide as the lesion; a closing only fills bays narrower than its ball.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

BODY_HU = -500.0
AIR_HU = -400.0
AIRWAY_LUMEN_HU = -950.0
RIGHT, LEFT = 1, 2
IN_PLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)


def segment_lungs(ct: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Binary lung mask (uint8, 1 = lung) of a CT on a canonical grid; `spacing` is (z, y, x) mm."""
    body = body_mask(ct)
    air = (ct < AIR_HU) & body
    airway = airway_mask((ct < AIRWAY_LUMEN_HU) & body, spacing)
    airway_and_wall = ndimage.binary_dilation(airway, IN_PLANE, iterations=2)
    aerated = lung_components(air & ~airway_and_wall, spacing)
    labels = split_left_right(aerated, spacing)
    return fill_dense_lung(labels, body & ~airway_and_wall).astype(np.uint8)


def body_mask(ct: np.ndarray) -> np.ndarray:
    """The patient: the largest tissue blob, holes (lungs, airways) filled slice by slice."""
    tissue = ct > BODY_HU
    components, count = ndimage.label(tissue)
    if count == 0:
        return tissue
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return fill_holes_per_slice(components == sizes.argmax())


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill every hole of each axial slice: background not connected, within its slice, to the slice's border."""
    background, _ = ndimage.label(~mask, IN_PLANE)
    border = np.unique(np.concatenate([
        background[:, 0, :].ravel(), background[:, -1, :].ravel(), background[:, :, 0].ravel(), background[:, :, -1].ravel()
    ]))
    outside = np.zeros(int(background.max()) + 1, dtype=bool)
    outside[border] = True
    outside[0] = False
    return ~outside[background]


def airway_mask(lumen: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Trachea and main bronchi outside the lungs, tracked downwards from the top slice of `lumen`.

    The trachea is the small air blob (0.5 to 8 cm2) nearest the image's midline, and
    within 30 mm of it, in the highest slice that has one; a branch is followed through the blobs that overlap the
    previous slice's cross-section, while each stays below 1.6x that cross-section (+1 cm2): a bronchus merging with
    the lung explodes that limit. Overlap, not nearness: blobs within 2 voxels also took in specks of dark parenchyma
    beside the bronchi (the lumen threshold lies within the noise of a dark scan's lung), and how far they led swung
    LIDC-IDRI-0002's lung mask by 100 mL between calibrations 2 HU apart (docs/validation.md, "Calibration offsets").
    """
    pixel_cm2 = spacing[1] * spacing[2] / 100.0
    nz, _, nx = lumen.shape
    mid_x = nx / 2.0
    airway = np.zeros_like(lumen)
    current = None
    for k in range(nz - 1, -1, -1):
        components, count = ndimage.label(lumen[k])
        if count == 0:
            if current is not None:
                break
            continue
        areas = np.bincount(components.ravel())[1:] * pixel_cm2
        if current is None:
            centres = ndimage.center_of_mass(lumen[k], components, range(1, count + 1))
            offsets_mm = {i: abs(centres[i][1] - mid_x) * spacing[2] for i in range(count)}
            candidates = [i for i in range(count) if 0.5 <= areas[i] <= 8.0 and offsets_mm[i] <= 30.0]
            if not candidates:
                if areas.max() > 8.0:
                    return airway  # reached the lungs without seeing a trachea
                continue
            current = components == min(candidates, key=offsets_mm.__getitem__) + 1
            airway[k] = current
            continue
        previous_area = current.sum() * pixel_cm2
        kept = np.zeros_like(current)
        for label in np.unique(components[current & (components > 0)]):
            if areas[label - 1] <= 1.6 * previous_area + 1.0:
                kept |= components == label
        if not kept.any():
            break
        airway[k] = current = kept
    return airway


def lung_components(aerated: np.ndarray, spacing: tuple[float, float, float], min_ml: float = 50.0) -> np.ndarray:
    """Keep the lung-sized air components; drop small ones and bowel gas below the lung bases."""
    components, count = ndimage.label(aerated)
    if count == 0:
        return aerated
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(components.ravel())[1:] * voxel_ml
    largest = int(sizes.argmax())
    extents = ndimage.find_objects(components)
    z_low, z_high = extents[largest][0].start, extents[largest][0].stop
    base_limit = z_low + 0.2 * (z_high - z_low)
    keep = np.zeros(count + 1, dtype=bool)
    for i, size in enumerate(sizes):
        centre_z = (extents[i][0].start + extents[i][0].stop) / 2.0
        keep[i + 1] = size >= max(min_ml, 0.1 * sizes[largest]) and centre_z >= base_limit
    return keep[components]


def split_left_right(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Label a binary lung mask on a canonical grid: 1 right lung (low x), 2 left lung (high x).

    Works on any binary mask (this module's or a model's). When the two lungs are separate
    components they are labelled by side (each component by the centre of its bounding box); a component spanning both sides (lungs touching
    at the anterior junction) is cut per slice at the thinnest column near the midline.
    """
    labels = np.zeros(mask.shape, dtype=np.uint8)
    components, count = ndimage.label(mask)
    if count == 0:
        return labels
    sizes = np.bincount(components.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    x_centres = np.array([(box[2].start + box[2].stop - 1) / 2.0 for box in ndimage.find_objects(components)])
    two_lungs = count >= 2 and sizes[order[1]] >= 0.2 * sizes[order[0]]
    if two_lungs:
        a, b = order[0], order[1]
        midline = (x_centres[a] + x_centres[b]) / 2.0
        side_of = np.where(x_centres < midline, RIGHT, LEFT).astype(np.uint8)
        return np.concatenate([[0], side_of])[components].astype(np.uint8)
    whole = mask.astype(bool)
    midline = ndimage.center_of_mass(whole)[2]
    half_window = max(1, int(round(30.0 / spacing[2])))
    x = np.arange(mask.shape[2])
    for k in range(mask.shape[0]):
        columns = whole[k].sum(axis=0)
        if not columns.any():
            continue
        lo, hi = max(0, int(midline) - half_window), min(mask.shape[2], int(midline) + half_window + 1)
        cut = lo + int(np.argmin(columns[lo:hi]))
        labels[k][whole[k] & (x[None, :] < cut)] = RIGHT
        labels[k][whole[k] & (x[None, :] >= cut)] = LEFT
    return labels


def fill_dense_lung(labels: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Add vessels and dense (consolidated) lung to the aerated lungs by per-slice convex hulls.

    A hull pixel is kept only inside the body, outside the region between the two lungs
    (mediastinum, hilum: the nearest lung towards patient right is the right lung and
    towards patient left the left lung) and where aerated lung of the same side exists at or below it
    in its column (not the liver or spleen under the diaphragm dome).
    """
    between = between_lungs(labels)
    filled = labels > 0
    for side in (RIGHT, LEFT):
        lung = labels == side
        supported = np.logical_or.accumulate(lung, axis=0)
        allowed = body & supported & ~between & (labels == 0)
        for k in np.flatnonzero(lung.any(axis=(1, 2))):
            hull = convex_hull_2d(lung[k])
            filled[k] |= hull & allowed[k]
    return filled


def between_lungs(labels: np.ndarray) -> np.ndarray:
    """Voxels whose row has the right lung on its low-x side and the left lung on its high-x side (the mediastinum and
    hilum, and any lung labelled there): where the lung's medial border lies against soft tissue."""
    return (nearest_label_along_x(labels, towards_low_x=True) == RIGHT) & (
        nearest_label_along_x(labels, towards_low_x=False) == LEFT
    )


def nearest_label_along_x(labels: np.ndarray, towards_low_x: bool) -> np.ndarray:
    """For each voxel, the label of the nearest labelled voxel in its row on the low-x (or high-x) side.

    The running maximum of (x index * 4 + label) carries the latest label seen along the row.
    """
    view = labels if towards_low_x else labels[:, :, ::-1]
    x = np.arange(1, view.shape[2] + 1, dtype=np.int32) * 4
    last = np.maximum.accumulate(np.where(view > 0, x + view, 0), axis=2)
    nearest = (last % 4).astype(np.uint8)
    return nearest if towards_low_x else nearest[:, :, ::-1]


def convex_hull_2d(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a 2D binary mask (pixel centres), rasterised row by row."""
    out = np.zeros_like(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return out
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    points = np.concatenate([np.column_stack([rows, first]), np.column_stack([rows, last])])  # row ends span the hull
    try:
        equations = ConvexHull(points).equations  # a*y + b*x + c <= 0 inside
    except QhullError:  # fewer than three points or all on a line: the mask is its own hull
        return mask.copy()
    y = np.arange(rows[0], rows[-1] + 1, dtype=float)[:, None]
    a, b, c = equations[:, 0][None, :], equations[:, 1][None, :], equations[:, 2][None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -(a * y + c) / b
    low = np.ceil(np.where(b < 0, bound, -np.inf).max(axis=1) - 1e-9)
    high = np.floor(np.where(b > 0, bound, np.inf).min(axis=1) + 1e-9)
    x = np.arange(mask.shape[1])[None, :]
    out[rows[0] : rows[-1] + 1] = (x >= low[:, None]) & (x <= high[:, None])
    return out
