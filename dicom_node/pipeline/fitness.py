"""Fitness flags: when a scan lies outside what the method was validated for, the result says so.

The opacity method and the reporting category were validated on non-contrast chest CT of
thin slices covering both lungs (`docs/validation.md`). A scan outside that is still
processed, but each figure may be wrong in a known direction, so the result carries one
`FitnessFlag` per condition found, each with what was measured and the limit it crossed,
and every headline figure shown with a flag raised is marked (never silently wrong).

Checks here (each a small pure function returning a flag or None, limits in `FitnessRules`):

- slice thickness above 3 mm (SliceThickness (0018,0050), else the slice spacing): thick
  slices blur vessels into ground glass and cut small lesions (partial volume along z);
- contrast in the pulmonary arteries: the cores of the large vessels inside the lungs
  (dense voxels 5 voxels wide in-plane, i.e. about 8 mm on the model grid: the central
  pulmonary arteries and veins) are bright; their 90th percentile is 42-64 HU on the
  shared non-contrast scans, 154 HU on the one with IV contrast (LIDC-IDRI-0001). Contrast
  makes vessels denser than consolidation and their partial-volume sleeve ground glass;
- incomplete lung coverage: lung on the first or last slice of the scan (as a share of
  the largest lung cross-section), so part of a lung is missing from every volume and
  percentage;
- streaks: dark streaks (photon starvation next to metal or contrast, or motion) push
  parenchyma below air; measured as the share of lung voxels darker than -1050 HU after a
  3 x 3 in-plane mean (0% on every shared scan);
- slices filled in by interpolation (`LoadRules.max_missing_slices`): no image was seen there;
- opacity against the mediastinum (`mediastinal_contact_flag`, once the opacity is known): where consolidation meets
  the mediastinum, no aerated lung shows the lung's border, and the classical lung mask ends at a straight line; a
  lesion there is measured only up to that line (A0002's mass; the phantoms' medial consolidation).

Other steps add their own flags through the same type (e.g. image quality after kernel
harmonisation); a flag is identified by its `code`, which is also its private SR code.
Respiratory motion is not measured as such: it shows here only as streaks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dicom_node.pipeline.boxes import bounding_box
from dicom_node.pipeline.lungs import between_lungs
from dicom_node.pipeline.settings import FitnessRules
from dicom_node.pipeline.volume import CtVolume

CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")  # a DICOM Code Value (SH) of the private scheme
VESSEL_CORE_HU = -100.0  # voxels denser than this in the lungs are vessels (or lesions); their cores are measured
VESSEL_CORE_WIDTH = 5  # voxels in-plane: only vessels at least this wide have a core (central arteries and veins)
MIN_VESSEL_CORE_VOXELS = 20  # fewer core voxels than this: no large vessel seen, contrast not assessed
DARK_HU = -1050.0
DARK_MEAN_WIDTH = 3


@dataclass(frozen=True)
class FitnessFlag:
    """One condition outside the validated range: what, why in words, the measured value and the limit it crossed.

    `above` says on which side of `limit` the flag is raised (True: measured > limit). A flag whose measured
    value does not cross its limit, or without a code, title or reason, is refused: a flag is a finding.
    """

    code: str  # e.g. "THICKSLICE": stable identifier, also the SR code value (private scheme)
    title: str  # e.g. "Slice thickness above the validated range" (the SR code meaning, at most 64 characters)
    reason: str  # a sentence for the reader: what was measured, where it came from, what it does to the figures
    measured: float
    limit: float
    unit: str  # UCUM: "mm", "[hnsf'U]", "%", "{slices}"
    above: bool = True

    def __post_init__(self) -> None:
        if not CODE_PATTERN.match(self.code):
            raise ValueError(f"fitness flag code {self.code!r}: 2-16 capital letters or digits, starting with a letter")
        if not self.title or len(self.title) > 64:
            raise ValueError(f"fitness flag {self.code}: a title of 1-64 characters is needed, got {self.title!r}")
        if not self.reason.strip():
            raise ValueError(f"fitness flag {self.code}: the reason is empty")
        if not (math.isfinite(self.measured) and math.isfinite(self.limit)):
            raise ValueError(f"fitness flag {self.code}: measured {self.measured} and limit {self.limit} must be finite")
        if (self.measured > self.limit) != self.above or self.measured == self.limit:
            side = "above" if self.above else "below"
            raise ValueError(f"fitness flag {self.code}: measured {self.measured} is not {side} its limit {self.limit}")

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "title": self.title,
            "reason": self.reason,
            "measured": self.measured,
            "limit": self.limit,
            "unit": self.unit,
            "above": self.above,
        }

    @classmethod
    def from_dict(cls, value: dict[str, object]) -> FitnessFlag:
        return cls(
            code=str(value["code"]),
            title=str(value["title"]),
            reason=str(value["reason"]),
            measured=float(value["measured"]),  # type: ignore[arg-type]
            limit=float(value["limit"]),  # type: ignore[arg-type]
            unit=str(value["unit"]),
            above=bool(value.get("above", True)),
        )


def slice_thickness_flag(volume: CtVolume, rules: FitnessRules) -> FitnessFlag | None:
    """Thicker slices than validated: SliceThickness of the first image, or the slice spacing where it is missing."""
    header = volume.source_headers[0] if volume.source_headers else None
    thickness, source = _header_float(header, "SliceThickness"), "SliceThickness (0018,0050)"
    if thickness is None or thickness <= 0:
        thickness, source = float(volume.spacing[0]), "the slice spacing (no SliceThickness)"
    if thickness <= rules.max_slice_thickness_mm:
        return None
    return FitnessFlag(
        "THICKSLICE",
        "Slice thickness above the validated range",
        f"slices of {thickness:g} mm ({source}), validated up to {rules.max_slice_thickness_mm:g} mm: partial volume "
        "along z blurs vessels into ground glass and small lesions out of it",
        thickness,
        rules.max_slice_thickness_mm,
        "mm",
    )


def contrast_flag(ct: np.ndarray, labels: np.ndarray, rules: FitnessRules) -> FitnessFlag | None:
    """Contrast medium in the pulmonary vessels: the 90th percentile of the large vessels' cores inside the lungs."""
    box = bounding_box(labels)
    if box is None:
        return None
    dense = (labels[box] > 0) & (ct[box] > VESSEL_CORE_HU)
    cores = ndimage.binary_erosion(dense, structure=np.ones((1, VESSEL_CORE_WIDTH, VESSEL_CORE_WIDTH), dtype=bool))
    values = ct[box][cores]
    if values.size < MIN_VESSEL_CORE_VOXELS:
        return None
    hu = float(np.percentile(values, 90))
    if hu <= rules.max_vessel_core_hu:
        return None
    return FitnessFlag(
        "CONTRAST",
        "Contrast medium in the pulmonary vessels",
        f"the cores of the large pulmonary vessels reach {hu:.0f} HU (90th percentile of {values.size} voxels), above "
        f"{rules.max_vessel_core_hu:g} HU for unenhanced blood: the method was validated without contrast; enhanced "
        "vessels and their partial-volume sleeves can be counted as opacity",
        hu,
        rules.max_vessel_core_hu,
        "[hnsf'U]",
    )


def coverage_flag(labels: np.ndarray, rules: FitnessRules) -> FitnessFlag | None:
    """Lungs cut by the scan's first or last slice: the larger end cross-section as a share of the largest one."""
    area = np.count_nonzero(labels, axis=(1, 2))
    if not area.max():
        return None
    share = 100.0 * float(max(area[0], area[-1])) / float(area.max())
    if share <= rules.max_end_slice_lung_percent:
        return None
    end = "lowest" if area[0] >= area[-1] else "highest"
    return FitnessFlag(
        "COVERAGE",
        "Lungs not fully covered by the scan",
        f"the {end} slice still holds lung ({share:.1f}% of the largest lung cross-section, at most "
        f"{rules.max_end_slice_lung_percent:g}% taken as the lung's tip): part of the lungs lies outside the scan, "
        "so volumes, PO and the zone-based score cover only what was scanned",
        share,
        rules.max_end_slice_lung_percent,
        "%",
    )


def streak_flag(ct: np.ndarray, labels: np.ndarray, rules: FitnessRules) -> FitnessFlag | None:
    """Dark streaks through the lungs: the share of lung voxels darker than air after a small in-plane mean."""
    box = bounding_box(labels)
    if box is None:
        return None
    lung = labels[box] > 0
    mean = ndimage.uniform_filter(ct[box].astype(np.float32, copy=False), (1, DARK_MEAN_WIDTH, DARK_MEAN_WIDTH))
    share = 100.0 * float(np.count_nonzero(mean[lung] < DARK_HU)) / float(np.count_nonzero(lung))
    if share <= rules.max_dark_streak_percent:
        return None
    return FitnessFlag(
        "STREAKS",
        "Streak artefacts or motion through the lungs",
        f"{share:.2f}% of the lung is darker than {DARK_HU:g} HU (air is -1000 HU), above "
        f"{rules.max_dark_streak_percent:g}%: streaks (metal, dense contrast, motion) cross the lungs; the bright "
        "side of a streak can be counted as opacity",
        share,
        rules.max_dark_streak_percent,
        "%",
    )


def interpolated_slices_flag(volume: CtVolume) -> FitnessFlag | None:
    """Slices the loader filled in by interpolation: measured figures there come from no image."""
    filled = sum(uid is None for uid in volume.sop_instance_uids)
    if not filled:
        return None
    return FitnessFlag(
        "FILLEDSLICES",
        "Missing slices filled in by interpolation",
        f"{filled} missing slice(s) were interpolated from their neighbours (pipeline.load.max_missing_slices): "
        "opacity there is a guess",
        float(filled),
        0.0,
        "{slices}",
    )


def mediastinal_contact_flag(
    opacity: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float], rules: FitnessRules
) -> FitnessFlag | None:
    """Opacity against the mediastinum: the area (cm2) of the faces along x where opacity meets the non-lung voxels
    between the lungs. A vessel or a small seed touches there over a cm2 or two; a consolidation or mass lying against
    the mediastinum over much more, and the lung mask cannot tell where such a lesion's lung ends (docs/validation.md)."""
    box = bounding_box(labels)
    if box is None:
        return None
    beside = (labels[box] == 0) & between_lungs(labels[box])
    found = opacity[box]
    faces = np.count_nonzero(found[:, :, 1:] & beside[:, :, :-1]) + np.count_nonzero(found[:, :, :-1] & beside[:, :, 1:])
    area_cm2 = faces * spacing[0] * spacing[1] / 100.0
    if area_cm2 <= rules.max_mediastinal_contact_cm2:
        return None
    return FitnessFlag(
        "MEDIASTINUM",
        "Opacity against the mediastinum",
        f"opacity meets the mediastinum over {area_cm2:.0f} cm2 (above {rules.max_mediastinal_contact_cm2:g} cm2): there "
        "no aerated lung shows where the lung ends, so the lung mask's border there is a guess (the classical mask stops "
        "at a straight line) and what lies beyond it is not measured: the lesion's volume, the opacity volume and PO may "
        "be underestimated",
        area_cm2,
        rules.max_mediastinal_contact_cm2,
        "cm2",
    )


def assess_fitness(
    volume: CtVolume, ct: np.ndarray, labels: np.ndarray, rules: FitnessRules = FitnessRules()
) -> list[FitnessFlag]:
    """Every flag raised for one scan: its headers (`volume`) and its CT in HU with lung labels on the model grid."""
    found = [
        slice_thickness_flag(volume, rules),
        interpolated_slices_flag(volume),
        contrast_flag(ct, labels, rules),
        coverage_flag(labels, rules),
        streak_flag(ct, labels, rules),
    ]
    return [flag for flag in found if flag is not None]


def _header_float(header: object, keyword: str) -> float | None:
    value = getattr(header, keyword, None) if header is not None else None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
