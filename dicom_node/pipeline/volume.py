"""DICOM series -> `CtVolume`: slices sorted along their normal, spacing from positions, HU as int16.

Why the checks: a volume built from a stack with duplicate positions, mixed
orientations, gantry tilt or gaps has a wrong geometry, and every later step (lung
volumes in ml, the SEG written back onto the source slices) would silently be wrong.
Such series raise `SeriesRejected` with a reason instead. The slice spacing comes
from ImagePositionPatient, never from SliceThickness (which can overlap or be absent).

Pixel data are decoded by pydicom in a thread pool, with GDCM (python-gdcm, 40 MB), as
SimpleITK (270 MB) did before: P001's 148 JPEG Lossless slices take 1.3 s of CPU with it,
1.9 s with pylibjpeg, the plugin pydicom tries next (for what GDCM cannot decode), which
also holds the GIL: P001 loaded in 5.7 s with it where GDCM and SimpleITK took 3.1-3.3 s
(best of four, two busy cores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.headers import check_geometry, check_pixel_module, check_scan_length, check_study, check_volume_size
from dicom_node.pipeline.selection import eligible_instances, slice_normal
from dicom_node.pipeline.settings import LoadRules, SelectionRules

HU_MIN, HU_MAX = -32768, 32767


@dataclass(frozen=True)
class CtVolume:
    """A CT series as an array with its patient geometry.

    `hu` is int16 in (z, y, x) order; `spacing` and `origin` are (z, y, x) in mm, `origin`
    being the LPS position of voxel [0, 0, 0] (reversed to z, y, x). `direction` is ITK's
    row-major 3x3 matrix whose columns are the LPS directions of the x, y and z array axes.
    Per slice (index z): the source file and SOP Instance UID, None for a slice filled in by
    interpolation (only when `LoadRules.max_missing_slices` allows gaps). `source_headers`
    keeps the headers the loader read (pixel data not read), so that the output writers
    do not read the files a second time; empty for volumes not loaded from files.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    source_files: tuple[Path | None, ...]
    sop_instance_uids: tuple[str | None, ...]
    source_headers: tuple[Dataset | None, ...] = field(default=(), repr=False, compare=False)

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0


def read_headers(paths: Sequence[Path]) -> list[Dataset]:
    """Headers, and the length of the pixel data without reading it: enough to check eligibility, geometry and the
    pixel module before decoding pixels."""
    return [pydicom.dcmread(p, defer_size=4096) for p in paths]


def load_series(
    paths: Sequence[Path | str],
    selection: SelectionRules = SelectionRules(),
    rules: LoadRules = LoadRules(),
) -> CtVolume:
    """Check, sort and decode one series; raises SeriesNotEligible or SeriesRejected with the reason."""
    all_paths = [Path(p) for p in paths]
    all_headers = read_headers(all_paths)
    series_uids = {str(h.get("SeriesInstanceUID", "")) for h in all_headers}
    if len(series_uids) > 1:
        raise SeriesRejected(f"files of {len(series_uids)} different series were given as one series")
    keep = eligible_instances(all_headers, selection)
    headers = [all_headers[i] for i in keep]
    files = [all_paths[i] for i in keep]
    check_study(headers)
    positions = np.array([check_geometry(h)[0] for h in headers])
    rows, columns = [check_pixel_module(h, rules) for h in headers][0]  # mixed sizes are refused below

    _check_same_image_plane(headers, rules)
    normal = slice_normal(headers[0])
    order = np.argsort(positions @ normal, kind="stable")
    positions, headers, files = positions[order], [headers[i] for i in order], [files[i] for i in order]
    distances = positions @ normal
    _check_no_duplicates(distances)
    _check_no_tilt(positions, normal, rules)
    check_scan_length(distances, rules)
    steps, spacing_z = _slice_steps(distances, rules)
    z_index = np.concatenate([[0], np.cumsum(steps)])
    row_spacing, column_spacing = (float(v) for v in headers[0].PixelSpacing)
    check_volume_size((int(z_index[-1]) + 1, rows, columns), (spacing_z, row_spacing, column_spacing), rules)

    hu = np.empty((int(z_index[-1]) + 1, rows, columns), dtype=np.int16)
    _decode_into(hu, z_index, files, rules.decode_threads)
    _interpolate_gaps(hu, z_index)

    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    direction = np.column_stack([iop[:3], iop[3:], normal])
    source_files: list[Path | None] = [None] * hu.shape[0]
    sop_uids: list[str | None] = [None] * hu.shape[0]
    source_headers: list[Dataset | None] = [None] * hu.shape[0]
    for k, f, h in zip(z_index, files, headers):
        source_files[k], sop_uids[k], source_headers[k] = f, str(h.SOPInstanceUID), h
    first = headers[0]
    return CtVolume(
        hu=hu,
        spacing=(spacing_z, row_spacing, column_spacing),
        origin=tuple(float(v) for v in positions[0][::-1]),
        direction=tuple(float(v) for v in direction.ravel()),
        series_instance_uid=str(first.SeriesInstanceUID),
        study_instance_uid=str(first.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        source_files=tuple(source_files),
        sop_instance_uids=tuple(sop_uids),
        source_headers=tuple(source_headers),
    )


def _check_same_image_plane(headers: Sequence[Dataset], rules: LoadRules) -> None:
    reference = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    for h in headers[1:]:
        if np.abs(np.asarray(h.ImageOrientationPatient, dtype=float) - reference).max() > rules.orientation_tolerance:
            raise SeriesRejected(
                "mixed orientations: ImageOrientationPatient differs between slices "
                f"({list(map(float, reference))} vs {list(map(float, h.ImageOrientationPatient))})"
            )
    shapes = {(int(h.Rows), int(h.Columns)) for h in headers}
    if len(shapes) > 1:
        raise SeriesRejected(f"mixed image sizes in one series: {sorted(shapes)}")
    pixel_spacings = {tuple(round(float(v), 4) for v in h.PixelSpacing) for h in headers}
    if len(pixel_spacings) > 1:
        raise SeriesRejected(f"mixed pixel spacings in one series: {sorted(pixel_spacings)}")


def _check_no_duplicates(sorted_distances: np.ndarray) -> None:
    gaps = np.diff(sorted_distances)
    duplicates = np.flatnonzero(gaps < 1e-3)
    if duplicates.size:
        where = ", ".join(f"{sorted_distances[i]:.2f}" for i in duplicates[:5])
        raise SeriesRejected(f"duplicate slice positions: {duplicates.size + 1} slices share positions at {where} mm")


def _check_no_tilt(positions: np.ndarray, normal: np.ndarray, rules: LoadRules) -> None:
    """Slices must stack along their own normal; a tilted gantry shifts each slice in-plane."""
    offsets = positions - positions[0]
    along = offsets @ normal
    in_plane = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    tilt = math.degrees(math.atan2(float(in_plane.max()), float(along[-1])))
    if tilt > rules.max_stack_tilt_deg:
        raise SeriesRejected(
            f"gantry tilt: slices are stacked {tilt:.1f} degrees off their normal "
            f"(at most {rules.max_stack_tilt_deg:g} accepted)"
        )


def _slice_steps(sorted_distances: np.ndarray, rules: LoadRules) -> tuple[np.ndarray, float]:
    """How many grid steps separate consecutive slices (1 = adjacent), and the grid spacing in mm."""
    gaps = np.diff(sorted_distances)
    if gaps.size == 0:
        raise SeriesRejected("a single slice is not a volume")
    spacing = float(np.median(gaps))
    ratios = gaps / spacing
    steps = np.rint(ratios).astype(int)
    irregular = np.flatnonzero(np.abs(ratios - steps) > rules.spacing_tolerance * steps)
    if irregular.size:
        i = int(irregular[0])
        raise SeriesRejected(
            f"irregular slice spacing: gap of {gaps[i]:.2f} mm at {sorted_distances[i]:.2f} mm "
            f"where the spacing is {spacing:.2f} mm"
        )
    missing = int((steps - 1).sum())
    if missing > rules.max_missing_slices:
        where = ", ".join(f"{sorted_distances[i]:.2f}" for i in np.flatnonzero(steps > 1)[:5])
        raise SeriesRejected(
            f"missing slices: {missing} missing (gaps after {where} mm, spacing {spacing:.2f} mm; "
            f"at most {rules.max_missing_slices} tolerated)"
        )
    return steps, spacing


def _decode_into(hu: np.ndarray, z_index: np.ndarray, files: Sequence[Path], threads: int) -> None:
    """Decode each file straight into its slice of `hu` (no second copy of the series)."""

    def decode(k: int, path: Path) -> None:
        image = _decode_hu(path)
        if image.shape != hu.shape[1:]:
            raise SeriesRejected(f"{path.name}: pixel data of shape {image.shape}, expected {hu.shape[1:]}")
        hu[k] = image

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(decode, z_index, files))


def _decode_hu(path: Path) -> np.ndarray:
    """One slice in HU (modality LUT applied, rounded to whole HU), as int16."""
    ds = pydicom.dcmread(path)
    values = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    return np.clip(np.rint(values), HU_MIN, HU_MAX).astype(np.int16)


def _interpolate_gaps(hu: np.ndarray, z_index: np.ndarray) -> None:
    """Fill grid slices with no source image linearly from their two neighbours (in place)."""
    for a, b in zip(z_index[:-1], z_index[1:]):
        for k in range(a + 1, b):
            w = (k - a) / (b - a)
            hu[k] = np.rint((1 - w) * hu[a].astype(np.float32) + w * hu[b].astype(np.float32)).astype(np.int16)
