"""Broken headers are refused before anything is decoded, with the attribute, its value and the instance named.

Each case is a phantom series with one broken attribute, run through the whole pipeline (`run_covid19` with the
embedded models), as the worker runs it. Before these checks they ended "no lungs found", "9223372036854775779
missing slices", a raw MemoryError, a raw highdicom ValueError after the whole pipeline, "modality  is not CT",
or took gigabytes and a minute (PixelSpacing 8 mm with 30 mm gaps).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.pipeline import run_covid19
from dicom_node.pipeline.errors import SeriesNotEligible, SeriesRejected
from phantoms.chest import make_phantom, write_phantom_series
from dicom_node.pipeline.settings import LoadRules, PipelineSettings, SegmentationSettings


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """128 x 128 x 34 slices: the size (1.1 MB) of the series that took 4.3 GB."""
    return write_phantom_series(make_phantom((128, 128, 34), seed=3), tmp_path_factory.mktemp("phantom"))


def broken(files: list[Path], out: Path, change: Callable[[int, pydicom.Dataset], None]) -> list[Path]:
    out.mkdir()
    copies = []
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the invalid values we write on purpose
            change(k, ds)
            ds.save_as(out / path.name)
        copies.append(out / path.name)
    return copies


def run(paths: list[Path], settings: PipelineSettings = PipelineSettings()) -> None:
    run_covid19(paths, EmbeddedLungSegmenter(), EmbeddedOpacityBaseline(), settings)


def on(index: int, **values: object) -> Callable[[int, pydicom.Dataset], None]:
    """Set attributes on one slice (index None: every slice)."""

    def change(k: int, ds: pydicom.Dataset) -> None:
        if index is None or k == index:
            for keyword, value in values.items():
                setattr(ds, keyword, value)

    return change


def positions_every(gap_mm: float) -> Callable[[int, pydicom.Dataset], None]:
    def change(k: int, ds: pydicom.Dataset) -> None:
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], f"{k * gap_mm:.1f}"]

    return change


CASES = {
    "rows_disagree_with_pixel_data": (
        on(0, Rows=256),
        r"Pixel Data \(7FE0,0010\) of instance 1 holds 32768 bytes where Rows 256 x Columns 128 x 16 bits need 65536",
    ),
    "bits_allocated_1": (on(None, BitsAllocated=1), r"BitsAllocated \(0028,0100\) is 1 in instance 1: CT images have 16 bits per pixel"),
    "pixel_spacing_zero": (
        on(None, PixelSpacing=["0", "0"]),
        r"PixelSpacing \(0028,0030\) is 0\\0 in instance 1: the distance between pixels must be positive",
    ),
    "nan_position": (
        on(5, ImagePositionPatient=["nan", "0", "0"]),
        r"ImagePositionPatient \(0020,0032\) is nan\\0(\.0)?\\0(\.0)? in instance 6: a position is three finite numbers in mm",
    ),
    "rows_columns_65535": (
        on(None, Rows=65535, Columns=65535),
        r"Rows \(0028,0010\) is 65535 in instance 1: images larger than 1024 pixels are refused \(pipeline.load.max_rows_columns\)",
    ),
    "several_studies": (
        lambda k, ds: setattr(ds, "StudyInstanceUID", "1.2.826.0.1.3680043.8.498.1" if k % 2 else "1.2.826.0.1.3680043.8.498.2"),
        r"carry 2 different StudyInstanceUID \(0020,000D\) values .*: a series must belong to one study",
    ),
    "pixel_spacing_8mm_30mm_gaps": (
        lambda k, ds: (on(None, PixelSpacing=["8", "8"])(k, ds), positions_every(30.0)(k, ds)),
        r"field of view of 1024 x 1024 mm \(Columns 128 x Rows 128 at PixelSpacing \(0028,0030\) 8\\8 mm\) is larger than 700 mm",
    ),
    "scan_length": (positions_every(60.0), r"the slices span 1980 mm .*more than 1500 mm \(pipeline.load.max_scan_length_mm\)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_header_fails_the_job_with_a_reason_that_names_it(case: str, phantom_files: list[Path], tmp_path: Path) -> None:
    change, reason = CASES[case]
    with pytest.raises(SeriesRejected, match=reason) as refused:
        run(broken(phantom_files, tmp_path / case, change))
    assert type(refused.value) is SeriesRejected  # failed, not skipped


def test_missing_modality_is_named(phantom_files: list[Path], tmp_path: Path) -> None:
    with pytest.raises(SeriesNotEligible, match=r"^Modality \(0008,0060\) is missing: this pipeline needs CT images$"):
        run(broken(phantom_files, tmp_path / "modality", lambda k, ds: delattr(ds, "Modality")))


def test_volume_and_grid_limits_refuse_before_allocating(phantom_files: list[Path]) -> None:
    with pytest.raises(SeriesRejected, match=r"128 x 128 x 34 = 1 million voxels, more than 0 million \(pipeline.load.max_voxels\)"):
        run(phantom_files, PipelineSettings(load=LoadRules(max_voxels=100_000)))
    with pytest.raises(SeriesRejected, match=r"the model grid would have .* million voxels of 1.6 x 1.6 x 2.5 mm.*max_grid_voxels"):
        run(phantom_files, PipelineSettings(segmentation=SegmentationSettings(max_grid_voxels=100_000)))


def test_the_unbroken_phantom_passes_every_check(phantom_files: list[Path]) -> None:
    run(phantom_files)
