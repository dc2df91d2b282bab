"""Which series the COVID-19 pipeline processes.

A job exists for every received series, including scout images, dose reports and
reformats; those are not errors but simply not for this pipeline, so they raise
`SeriesNotEligible` (the job ends as `skipped`) with a reason a user can read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from dicom_node.pipeline.errors import SeriesNotEligible
from dicom_node.pipeline.settings import SelectionRules


def is_localizer(header: Dataset) -> bool:
    """Scout/topogram images are flagged LOCALIZER in ImageType (C.8.2.1.1.1)."""
    return "LOCALIZER" in [str(v).upper() for v in header.get("ImageType", [])]


def slice_normal(header: Dataset) -> np.ndarray:
    """Unit normal of an image plane: row direction x column direction (LPS)."""
    iop = np.asarray(header.ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return normal / np.linalg.norm(normal)


def axial_deviation_deg(header: Dataset) -> float:
    """Angle between the slice normal and the patient's head-feet axis (0 for a true axial slice)."""
    return math.degrees(math.acos(min(1.0, abs(float(slice_normal(header)[2])))))


def eligible_instances(headers: Sequence[Dataset], rules: SelectionRules) -> list[int]:
    """Indices of the instances to stack, or `SeriesNotEligible` when the series is not an axial chest CT.

    Localizer instances mixed into an axial series are left out rather than failing the series.
    """
    if not headers:
        raise SeriesNotEligible("the series has no instances")
    modalities = {str(h.get("Modality", "")).strip() for h in headers}
    if "" in modalities:
        raise SeriesNotEligible(f"Modality (0008,0060) is missing: this pipeline needs {rules.modality} images")
    if modalities != {rules.modality}:
        raise SeriesNotEligible(f"modality {'/'.join(sorted(modalities))} is not {rules.modality}")
    keep = [i for i, h in enumerate(headers) if not is_localizer(h)]
    if not keep:
        raise SeriesNotEligible("localizer (scout) series: ImageType contains LOCALIZER")
    missing_geometry = [i for i in keep if "ImageOrientationPatient" not in headers[i] or "ImagePositionPatient" not in headers[i]]
    if missing_geometry:
        raise SeriesNotEligible("instances without ImagePositionPatient/ImageOrientationPatient (not a CT image stack)")
    if any(int(headers[i].get("NumberOfFrames", 1) or 1) > 1 for i in keep):
        raise SeriesNotEligible("multi-frame CT images are not supported; send single-frame CT Image Storage")
    deviation = max(axial_deviation_deg(headers[i]) for i in keep)
    if deviation > rules.max_axial_deviation_deg:
        raise SeriesNotEligible(
            f"not an axial series: slice normal is {deviation:.1f} degrees from the head-feet axis "
            f"(at most {rules.max_axial_deviation_deg:g} accepted)"
        )
    if len(keep) < rules.min_slices:
        raise SeriesNotEligible(f"too few slices: {len(keep)} (at least {rules.min_slices} needed)")
    return keep
