"""PipelineResults for the output tests: the real P001 series and a phantom series with a gap.

The tests assert on DICOM correctness, not segmentation quality: P001's lungs
are a threshold mask split at the image midline and its opacity a few balls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicom_node.pipelines.covid19.pipeline import Classification, Measurements, PipelineResult
from dicom_node.pipelines.covid19.category import rsna_category
from dicom_node.pipeline.fitness import assess_fitness
from dicom_node.pipeline.pattern import describe_opacity
from phantoms.chest import make_phantom, write_phantom_series
from dicom_node.pipeline.settings import LoadRules
from dicom_node.pipeline.volume import CtVolume, load_series

P001 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "covid-ct-md" / "P001"
BASELINE = Classification(
    model_name="dicom-node-opacity-baseline",
    model_version="1.0",
    baseline=True,
    class_names=("non-COVID", "COVID-19"),
    scores=(0.25, 0.75),
)


def result_from_masks(volume: CtVolume, labels: np.ndarray, opacity: np.ndarray) -> PipelineResult:
    """A PipelineResult whose measurements, opacity pattern, category and fitness flags come from the given masks."""
    regions = {"right": labels == 1, "left": labels == 2, "total": labels > 0}
    lung_ml = {key: float(mask.sum()) * volume.voxel_volume_ml for key, mask in regions.items()}
    opacity_ml = {key: float((mask & opacity).sum()) * volume.voxel_volume_ml for key, mask in regions.items()}
    percent = {key: 100.0 * opacity_ml[key] / lung_ml[key] for key in regions}
    pattern = describe_opacity(opacity, opacity & (volume.hu >= -200), labels, volume.spacing)
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
        classification=BASELINE,
        timings={"total_s": 1.0},
        pattern=pattern,
        fitness=tuple(assess_fitness(volume, volume.hu, labels)),
        category=rsna_category(pattern, opacity_ml),
    )


def simple_masks(volume: CtVolume) -> tuple[np.ndarray, np.ndarray]:
    """Lungs = lung-like HU away from the image border split at the midline; opacity = three balls inside them."""
    hu = volume.hu
    z, y, x = np.indices(hu.shape, sparse=True)
    lungs = (hu > -950) & (hu < -400)
    border = 60
    lungs[:, :border, :] = lungs[:, -border:, :] = False
    lungs[:, :, :border] = lungs[:, :, -border:] = False
    labels = np.zeros(hu.shape, np.uint8)
    # Image left (low column index) is the patient's right in a standard axial view.
    labels[lungs & (x < hu.shape[2] // 2)] = 1
    labels[lungs & (x >= hu.shape[2] // 2)] = 2
    opacity = np.zeros(hu.shape, bool)
    for cz, cy, cx, r in ((40, 250, 150, 12), (80, 280, 360, 20), (100, 230, 170, 8)):
        opacity |= (z - cz) ** 2 * 4 + (y - cy) ** 2 + (x - cx) ** 2 < r**2
    return labels, opacity & (labels > 0)


@pytest.fixture(scope="session")
def p001_result() -> PipelineResult:
    files = sorted(P001.glob("*.dcm"))
    if not files:
        pytest.skip(f"real CT data not found at {P001.resolve()} (see shared/data/README.md)")
    volume = load_series(files)
    return result_from_masks(volume, *simple_masks(volume))


@pytest.fixture(scope="session")
def phantom_with_gap_result(tmp_path_factory: pytest.TempPathFactory) -> PipelineResult:
    """A small phantom whose series lost one slice; the loader fills it by interpolation."""
    phantom = make_phantom((96, 96, 24), 0.1, seed=3)
    files = write_phantom_series(phantom, tmp_path_factory.mktemp("phantom"))
    missing = files.pop(len(files) // 2)
    missing.unlink()
    volume = load_series(files, rules=LoadRules(max_missing_slices=1))
    assert volume.source_files.count(None) == 1
    return result_from_masks(volume, phantom.lungs, phantom.opacity)
