"""The LIDC-IDRI readers' nodule outlines (LIDC XML), to tell a found opacity that is a nodule from one that is not.

Validation code only: the node knows nothing of LIDC. Each of the four readers outlines every
nodule of 3 mm or more slice by slice (an `roi` per slice: its z position and the boundary
pixels, `inclusion` FALSE for a hole) and marks smaller ones by their centre alone (a
single edge point). `nonNodule` marks are not nodules and are ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from dicom_node.pipeline.volume import CtVolume

NS = {"l": "http://www.nih.gov"}
SMALL_NODULE_RADIUS_MM = 2.5  # a centre-only mark: a nodule under 3 mm


@dataclass(frozen=True)
class NoduleOutline:
    """One reader's outline of one nodule in one slice: pixel (column, row) points at z (mm, patient)."""

    reader: int
    nodule_id: str
    z_mm: float
    points: tuple[tuple[int, int], ...]
    inclusion: bool


def read_nodule_outlines(path: Path) -> list[NoduleOutline]:
    """Every nodule outline of every reading session in an LIDC XML file."""
    root = ElementTree.parse(path).getroot()
    outlines = []
    for reader, session in enumerate(root.iterfind("l:readingSession", NS)):
        for nodule in session.iterfind("l:unblindedReadNodule", NS):
            nodule_id = (nodule.findtext("l:noduleID", "", NS) or "").strip()
            for roi in nodule.iterfind("l:roi", NS):
                points = tuple(
                    (int(edge.findtext("l:xCoord", "0", NS)), int(edge.findtext("l:yCoord", "0", NS)))
                    for edge in roi.iterfind("l:edgeMap", NS)
                )
                outlines.append(
                    NoduleOutline(
                        reader=reader,
                        nodule_id=nodule_id,
                        z_mm=float(roi.findtext("l:imageZposition", "nan", NS)),
                        points=points,
                        inclusion=(roi.findtext("l:inclusion", "TRUE", NS) or "").strip().upper() == "TRUE",
                    )
                )
    return outlines


def nodule_mask(
    outlines: list[NoduleOutline], shape: tuple[int, int, int], slice_z_mm: np.ndarray, pixel_spacing_mm: float
) -> np.ndarray:
    """Union of all readers' nodules on a native (z, y, x) grid whose slices lie at `slice_z_mm` (patient z)."""
    mask = np.zeros(shape, dtype=bool)
    radius = max(1, int(round(SMALL_NODULE_RADIUS_MM / pixel_spacing_mm)))
    for outline in sorted(outlines, key=lambda o: not o.inclusion):  # holes after the outlines they cut
        k = int(np.argmin(np.abs(slice_z_mm - outline.z_mm)))
        if abs(slice_z_mm[k] - outline.z_mm) > 0.5 * float(np.min(np.diff(np.sort(slice_z_mm)))) + 1e-3:
            continue
        canvas = Image.new("1", (shape[2], shape[1]), 0)
        draw = ImageDraw.Draw(canvas)
        if len(outline.points) == 1:
            (x, y), = outline.points
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=1)
        else:
            draw.polygon(list(outline.points), outline=1, fill=1)
        filled = np.asarray(canvas, dtype=bool)
        if outline.inclusion:
            mask[k] |= filled
        else:
            mask[k] &= ~filled
    return mask


def readers_nodules(xml_path: Path, volume: CtVolume) -> np.ndarray:
    """The readers' nodules of an LIDC XML file on `volume`'s native grid (its slices along patient z)."""
    slice_z_mm = volume.origin[0] + np.arange(volume.hu.shape[0]) * volume.spacing[0]
    return nodule_mask(read_nodule_outlines(xml_path), volume.hu.shape, slice_z_mm, volume.spacing[1])


def opacity_outside_nodules_ml(
    opacity: np.ndarray, nodules: np.ndarray, spacing: tuple[float, float, float], near_mm: float = 5.0
) -> float:
    """mL of the opacity's connected components (26-neighbourhood) that come no nearer than `near_mm` to a nodule.

    A found nodule is usually a little larger than the readers' outline (partial volume, the
    growth), so a component touching the outline widened by `near_mm` is the nodule.
    """
    near = ndimage.distance_transform_edt(~nodules, sampling=spacing) <= near_mm if nodules.any() else nodules
    components, count = ndimage.label(opacity, np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return 0.0
    touching = np.unique(components[near & opacity])
    outside = opacity & ~np.isin(components, touching[touching > 0])
    return float(outside.sum()) * float(np.prod(spacing)) / 1000.0
