"""A PipelineResult for the real P001 series with simple, test-made masks.

The tests assert on DICOM correctness, not segmentation quality: the lungs are
a threshold mask split at the image midline and the opacity is a few blobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.pipeline.covid19 import Classification, Measurements, PipelineResult
from dicom_node.pipeline.volume import CtVolume, SourceSlice

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
P001 = DATA / "covid-ct-md" / "P001"


def load_p001() -> CtVolume:
    """Read P001 with pydicom, sorted along the slice normal (stand-in for the pipeline's loader)."""
    datasets = [pydicom.dcmread(path) for path in sorted(P001.glob("*.dcm"))]
    row, col = (np.array(v, dtype=float) for v in np.reshape(datasets[0].ImageOrientationPatient, (2, 3)))
    normal = np.cross(row, col)
    datasets.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
    hu = np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets]
    ).astype(np.int16)
    positions = np.array([ds.ImagePositionPatient for ds in datasets], dtype=float)
    dz = float(np.median(np.diff(positions @ normal)))
    dy, dx = (float(v) for v in datasets[0].PixelSpacing)
    header = pydicom.dcmread(datasets[0].filename, stop_before_pixels=True)
    return CtVolume(
        hu=hu,
        spacing=(dz, dy, dx),
        origin=tuple(float(v) for v in positions[0]),
        direction=np.column_stack([row, col, normal]),
        slices=[SourceSlice(ds.SOPInstanceUID, ds.SOPClassUID, Path(ds.filename)) for ds in datasets],
        header=header,
    )


def simple_result(volume: CtVolume) -> PipelineResult:
    """Lungs = air-like voxels inside the body split at the midline; opacity = three balls inside them."""
    hu = volume.hu
    z, y, x = np.indices(hu.shape, sparse=True)
    lungs = (hu > -950) & (hu < -400)
    lungs[:, :60, :] = False  # air in front of the patient
    lungs[:, -60:, :] = False
    lungs[:, :, :60] = False
    lungs[:, :, -60:] = False
    labels = np.zeros(hu.shape, np.uint8)
    midline = hu.shape[2] // 2
    # Image left (low column index) is the patient's right in a standard axial view.
    labels[lungs & (x < midline)] = 1
    labels[lungs & (x >= midline)] = 2
    opacity = np.zeros(hu.shape, bool)
    for cz, cy, cx, r in ((40, 250, 150, 12), (80, 280, 360, 20), (100, 230, 170, 8)):
        opacity |= (z - cz) ** 2 * 4 + (y - cy) ** 2 + (x - cx) ** 2 < r**2
    opacity &= labels > 0
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    lung_ml = {"right": float((labels == 1).sum()) * voxel_ml, "left": float((labels == 2).sum()) * voxel_ml}
    lung_ml["total"] = lung_ml["right"] + lung_ml["left"]
    opacity_ml = {
        "right": float((opacity & (labels == 1)).sum()) * voxel_ml,
        "left": float((opacity & (labels == 2)).sum()) * voxel_ml,
    }
    opacity_ml["total"] = opacity_ml["right"] + opacity_ml["left"]
    percent = {key: 100.0 * opacity_ml[key] / lung_ml[key] for key in lung_ml}
    return PipelineResult(
        volume=volume,
        lung_labels=labels,
        opacity_mask=opacity,
        measurements=Measurements(
            lung_volume_ml=lung_ml,
            opacity_volume_ml=opacity_ml,
            opacity_percent=percent,
            high_opacity_percent={key: value / 4 for key, value in percent.items()},
        ),
        classification=Classification(
            model_name="dicom-node-opacity-baseline",
            model_version="1.0",
            baseline=True,
            class_names=("non-COVID", "COVID-19"),
            probabilities=(0.25, 0.75),
        ),
        timings={"total": 1.0},
    )


@pytest.fixture(scope="session")
def p001_result() -> PipelineResult:
    if not P001.is_dir():
        pytest.skip(f"real CT data not found at {P001} (see /work/shared/data/README.md)")
    return simple_result(load_p001())
