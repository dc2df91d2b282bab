"""Loading a series: geometry from positions, and the documented reasons for rejecting bad stacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.pipeline.errors import SeriesNotEligible, SeriesRejected
from phantoms.chest import Phantom
from dicom_node.pipeline.settings import LoadRules, SelectionRules
from dicom_node.pipeline.volume import load_series
from tests.pipeline.conftest import real_series


def modified_copy(series: list[Path], tmp_path: Path, change: Callable[[int, pydicom.Dataset], None]) -> list[Path]:
    """Copy the series into tmp_path, letting `change(index, dataset)` edit each slice."""
    out = []
    for i, path in enumerate(series):
        ds = pydicom.dcmread(path)
        change(i, ds)
        target = tmp_path / path.name
        ds.save_as(target)
        out.append(target)
    return out


def test_phantom_series_loads_with_its_geometry_whatever_the_file_order(clear_phantom: Phantom, clear_series):
    volume = load_series(list(reversed(clear_series)))
    assert np.array_equal(volume.hu, clear_phantom.hu)
    assert volume.hu.dtype == np.int16
    assert volume.spacing == pytest.approx(clear_phantom.spacing, abs=1e-4)
    assert volume.origin == pytest.approx(clear_phantom.origin, abs=1e-3)
    assert volume.source_files == tuple(clear_series)
    assert volume.origin[0] + 10 * volume.spacing[0] == pytest.approx(float(pydicom.dcmread(clear_series[10]).ImagePositionPatient[2]))


def test_spacing_comes_from_positions_not_slice_thickness(clear_series, tmp_path):
    series = modified_copy(clear_series, tmp_path, lambda i, ds: setattr(ds, "SliceThickness", "1"))
    assert load_series(series).spacing[0] == pytest.approx(3.75)


def test_duplicate_positions_are_rejected(clear_series, tmp_path):
    series = modified_copy(clear_series, tmp_path, lambda i, ds: None)
    duplicate = tmp_path / "duplicate.dcm"
    ds = pydicom.dcmread(series[5])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(duplicate)
    with pytest.raises(SeriesRejected, match="duplicate slice positions"):
        load_series([*series, duplicate])


def test_mixed_orientations_are_rejected(clear_series, tmp_path):
    def rotate_one(i: int, ds: pydicom.Dataset) -> None:
        if i == 7:
            ds.ImageOrientationPatient = [0.9848, 0.1736, 0, -0.1736, 0.9848, 0]

    with pytest.raises(SeriesRejected, match="mixed orientations"):
        load_series(modified_copy(clear_series, tmp_path, rotate_one))


def test_missing_slices_are_rejected_beyond_the_tolerance(clear_series, tmp_path):
    series = modified_copy(clear_series, tmp_path, lambda i, ds: None)
    del series[40:42]
    with pytest.raises(SeriesRejected, match="missing slices: 2 missing"):
        load_series(series)
    volume = load_series(series, rules=LoadRules(max_missing_slices=2))
    assert volume.hu.shape[0] == len(clear_series)
    assert volume.source_files[40] is None and volume.source_files[42] == series[40]


def test_gantry_tilt_is_rejected(clear_series, tmp_path):
    def tilt(i: int, ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.2 * (z + 150.0), z]  # about 11 degrees

    with pytest.raises(SeriesRejected, match="gantry tilt"):
        load_series(modified_copy(clear_series, tmp_path, tilt))


def test_non_ct_series_is_not_eligible(clear_series, tmp_path):
    series = modified_copy(clear_series, tmp_path, lambda i, ds: setattr(ds, "Modality", "MR"))
    with pytest.raises(SeriesNotEligible, match="modality MR is not CT"):
        load_series(series)


def test_localizer_series_is_not_eligible(clear_series, tmp_path):
    series = modified_copy(clear_series, tmp_path, lambda i, ds: setattr(ds, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"]))
    with pytest.raises(SeriesNotEligible, match="localizer"):
        load_series(series)


def test_localizer_mixed_into_an_axial_series_is_left_out(clear_series, tmp_path):
    series = modified_copy(clear_series, tmp_path, lambda i, ds: None)
    scout = tmp_path / "scout.dcm"
    ds = pydicom.dcmread(series[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(scout)
    assert scout not in load_series([scout, *series]).source_files


def test_too_few_slices_and_non_axial_series_are_not_eligible(clear_series, tmp_path):
    with pytest.raises(SeriesNotEligible, match="too few slices: 10"):
        load_series(clear_series[:10])
    coronal = modified_copy(clear_series, tmp_path, lambda i, ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1]))
    with pytest.raises(SeriesNotEligible, match="not an axial series"):
        load_series(coronal, SelectionRules())


def test_p001_jpeg_lossless_loads_in_hu():
    files = real_series("covid-ct-md/P001")
    volume = load_series(files)
    assert volume.hu.shape == (148, 512, 512)
    assert volume.spacing[0] == pytest.approx(2.0)
    reference = pydicom.dcmread(volume.source_files[74])
    expected = reference.pixel_array.astype(np.int32) * int(reference.RescaleSlope) + int(reference.RescaleIntercept)
    assert np.array_equal(volume.hu[74], expected)


@pytest.mark.slow
def test_p001_loads_within_1_5_s():
    """Best of three, so that a neighbour's burst of CPU does not decide it."""
    files = real_series("covid-ct-md/P001")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        load_series(files)
        times.append(time.perf_counter() - start)
    assert min(times) < 1.5, f"P001 load took {min(times):.2f} s at best"


def test_files_of_two_series_are_rejected(clear_series, tmp_path):
    def other_series(i: int, ds: pydicom.Dataset) -> None:
        if i % 2:
            ds.SeriesInstanceUID = "1.2.3.4.5"

    with pytest.raises(SeriesRejected, match="2 different series"):
        load_series(modified_copy(clear_series, tmp_path, other_series))
