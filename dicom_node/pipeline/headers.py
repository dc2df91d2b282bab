"""Pixel-module and geometry checks on the headers of a series, before any pixel is decoded or any array allocated.

A header that lies (Rows x Columns that its Pixel Data cannot hold, PixelSpacing 0, a NaN position, 65535 x 65535
pixels, a field of view of four metres) otherwise surfaces much later as a wrong answer ("no lungs found", a
nonsensical count of missing slices), a raw MemoryError or a job that takes gigabytes. Each check names the
attribute, its tag, its value and the instance, so that a radiographer can find the slice the modality got wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.settings import LoadRules

PIXEL_DATA = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF


def _instance_label(header: Dataset) -> str:
    number = header.get("InstanceNumber")
    return f"instance {number}" if number not in (None, "") else f"instance {header.get('SOPInstanceUID', '?')}"


def _shown(header: Dataset, keyword: str) -> str:
    """The value as the DICOM file writes it (multi-values joined by a backslash), or 'missing'."""
    if keyword not in header or header[keyword].value in (None, ""):
        return "missing"
    value = header[keyword].value
    return "\\".join(str(v) for v in value) if isinstance(value, (MultiValue, list, tuple)) else str(value)


def _numbers(header: Dataset, keyword: str, tag: str, count: int, what: str) -> np.ndarray:
    """`count` finite numbers of a decimal-string attribute, or SeriesRejected naming it."""
    problem = f"{keyword} {tag} is {_shown(header, keyword)} in {_instance_label(header)}: {what}"
    try:
        values = np.asarray([float(v) for v in header.get(keyword) or []], dtype=float)
    except (TypeError, ValueError):
        raise SeriesRejected(problem) from None
    if values.size != count or not np.isfinite(values).all():
        raise SeriesRejected(problem)
    return values


def check_study(headers: Sequence[Dataset]) -> None:
    """One series belongs to one study: its results (SEG, SR) are written into that study."""
    studies = sorted({str(h.get("StudyInstanceUID", "")) for h in headers})
    if len(studies) > 1:
        raise SeriesRejected(
            f"the series' instances carry {len(studies)} different StudyInstanceUID (0020,000D) values "
            f"({', '.join(studies[:3])}{', ...' if len(studies) > 3 else ''}): a series must belong to one study"
        )


def check_pixel_module(header: Dataset, rules: LoadRules) -> tuple[int, int]:
    """Rows and Columns of one CT image, checked against its pixel module and the size limit; returns them."""
    where = _instance_label(header)
    for keyword, tag in (("Rows", "(0028,0010)"), ("Columns", "(0028,0011)")):
        value = header.get(keyword)
        if not isinstance(value, int) or value < 1:
            raise SeriesRejected(f"{keyword} {tag} is {_shown(header, keyword)} in {where}: not an image size")
        if value > rules.max_rows_columns:
            raise SeriesRejected(
                f"{keyword} {tag} is {value} in {where}: images larger than {rules.max_rows_columns} pixels "
                "are refused (pipeline.load.max_rows_columns)"
            )
    rows, columns = int(header.Rows), int(header.Columns)
    if header.get("BitsAllocated") != 16:
        raise SeriesRejected(f"BitsAllocated (0028,0100) is {_shown(header, 'BitsAllocated')} in {where}: CT images have 16 bits per pixel")
    if header.get("SamplesPerPixel", 1) != 1:
        raise SeriesRejected(f"SamplesPerPixel (0028,0002) is {_shown(header, 'SamplesPerPixel')} in {where}: CT images have one sample per pixel")
    stored = header.get("BitsStored", 16)
    if not isinstance(stored, int) or not 1 <= stored <= 16:
        raise SeriesRejected(f"BitsStored (0028,0101) is {_shown(header, 'BitsStored')} in {where}: at most BitsAllocated (16)")
    element = header.get_item(PIXEL_DATA, keep_deferred=True)
    if element is None:
        raise SeriesRejected(f"Pixel Data (7FE0,0010) is missing in {where}")
    length = getattr(element, "length", None)
    if length is None:  # read into memory (a small file): its length is its value's
        length = len(element.value or b"")
    expected = rows * columns * 2
    if length != UNDEFINED_LENGTH and length not in (expected, expected + 1):  # encapsulated data are checked when decoded
        raise SeriesRejected(
            f"Pixel Data (7FE0,0010) of {where} holds {length} bytes where Rows {rows} x Columns {columns} "
            f"x 16 bits need {expected}"
        )
    return rows, columns


def check_geometry(header: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImagePositionPatient, ImageOrientationPatient and PixelSpacing of one image, finite and meaningful."""
    position = _numbers(header, "ImagePositionPatient", "(0020,0032)", 3, "a position is three finite numbers in mm")
    orientation = _numbers(
        header, "ImageOrientationPatient", "(0020,0037)", 6, "an orientation is two unit vectors of three finite numbers"
    )
    row, column = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(column) - 1) > 0.01 or abs(float(row @ column)) > 0.01:
        raise SeriesRejected(
            f"ImageOrientationPatient (0020,0037) is {_shown(header, 'ImageOrientationPatient')} in {_instance_label(header)}: "
            "the row and column directions must be perpendicular unit vectors"
        )
    spacing = _numbers(header, "PixelSpacing", "(0028,0030)", 2, "the pixel spacing is two distances in mm")
    if (spacing <= 0).any():
        raise SeriesRejected(
            f"PixelSpacing (0028,0030) is {_shown(header, 'PixelSpacing')} in {_instance_label(header)}: "
            "the distance between pixels must be positive"
        )
    return position, orientation, spacing


def check_scan_length(sorted_distances: np.ndarray, rules: LoadRules) -> None:
    """The slices (sorted along their normal, mm) span no more than a body: checked before gaps are counted."""
    span = float(sorted_distances[-1] - sorted_distances[0])
    if span > rules.max_scan_length_mm:
        raise SeriesRejected(
            f"the slices span {span:.0f} mm (ImagePositionPatient (0020,0032) from {sorted_distances[0]:.1f} to "
            f"{sorted_distances[-1]:.1f} mm along the slice normal), more than {rules.max_scan_length_mm:g} mm "
            "(pipeline.load.max_scan_length_mm)"
        )


def check_volume_size(shape: tuple[int, int, int], spacing: tuple[float, float, float], rules: LoadRules) -> None:
    """The volume the series would become (z, y, x voxels of `spacing` mm) fits the configured limits."""
    width, height = shape[2] * spacing[2], shape[1] * spacing[1]
    if max(width, height) > rules.max_field_of_view_mm:
        raise SeriesRejected(
            f"field of view of {width:.0f} x {height:.0f} mm (Columns {shape[2]} x Rows {shape[1]} at PixelSpacing "
            f"(0028,0030) {spacing[1]:g}\\{spacing[2]:g} mm) is larger than {rules.max_field_of_view_mm:g} mm "
            "(pipeline.load.max_field_of_view_mm): PixelSpacing is probably wrong"
        )
    voxels = math.prod(shape)
    if voxels > rules.max_voxels:
        raise SeriesRejected(
            f"the volume would have {shape[2]} x {shape[1]} x {shape[0]} = {voxels / 1e6:.0f} million voxels, more than "
            f"{rules.max_voxels / 1e6:.0f} million (pipeline.load.max_voxels)"
        )
