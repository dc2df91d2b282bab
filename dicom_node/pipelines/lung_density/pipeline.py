"""The lung-density pipeline: series files -> lungs on the series' own grid -> densitometry and its fitness.

load (shared `volume.load_series`) -> segment (shared: model grid, the `lung_segmentation` model, left/right
split, labels back onto the native grid) -> fitness for the QIBA profile (headers; the parenchyma's noise)
-> measure (RA-950, Perc15, volume and mean density per lung, both lungs and zone; `density.py`) -> the
low-attenuation mask. Only the segmentation uses the model grid: every figure is read from the series' own
voxels. Each step's wall time is kept in `timings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dicom_node.inference.base import ContractMismatch, InferenceModel
from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.fitness import FitnessFlag
from dicom_node.pipeline.lungs import split_left_right
from dicom_node.pipeline.resample import labels_to_native, to_model_grid
from dicom_node.pipeline.timing import timed
from dicom_node.pipeline.volume import CtVolume, load_series
from dicom_node.pipelines.lung_density.fitness import Acquisition, fitness_flags, read_acquisition
from dicom_node.pipelines.lung_density.density import LungDensity, low_attenuation_mask, measure_density
from dicom_node.pipelines.lung_density.settings import LungDensitySettings

MIN_LUNG_ML = 200.0


@dataclass
class LungDensityResult:
    """Everything the output writers need; masks are on the series' native (z, y, x) grid."""

    volume: CtVolume
    lung_labels: np.ndarray  # uint8: 0 background, 1 right lung, 2 left lung
    low_attenuation: np.ndarray  # bool: lung voxels below the threshold (what RA counts)
    density: LungDensity
    acquisition: Acquisition
    fitness: tuple[FitnessFlag, ...] = ()  # conditions outside the QIBA profile; empty: fit
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def fit(self) -> bool:
        return not self.fitness


def run_lung_density(
    paths: Sequence[Path | str], segmenter: InferenceModel, settings: LungDensitySettings = LungDensitySettings()
) -> LungDensityResult:
    """Run the whole pipeline on one series' files (SeriesNotEligible, SeriesRejected with the reason)."""
    timings: dict[str, float] = {}
    with timed(timings, "load"):
        volume = load_series(paths, settings.selection, settings.load)
    return analyse_volume(volume, segmenter, settings, timings)


def analyse_volume(
    volume: CtVolume,
    segmenter: InferenceModel,
    settings: LungDensitySettings = LungDensitySettings(),
    timings: dict[str, float] | None = None,
) -> LungDensityResult:
    """Everything after loading, for a volume in memory."""
    timings = {} if timings is None else timings
    with timed(timings, "segment"):
        labels = native_lung_labels(volume, segmenter, settings)
    with timed(timings, "fitness"):
        acquisition = read_acquisition(volume, labels)
        flags = fitness_flags(acquisition, settings.qiba, settings.threshold_hu)
    with timed(timings, "measure"):
        density = measure_density(
            volume.hu, labels, volume.voxel_volume_ml, head_first=_head_first(volume),
            threshold_hu=settings.threshold_hu, percentile=settings.percentile,
        )
        low = low_attenuation_mask(volume.hu, labels, settings.threshold_hu)
    return LungDensityResult(volume, labels, low, density, acquisition, flags, timings)


def native_lung_labels(volume: CtVolume, segmenter: InferenceModel, settings: LungDensitySettings) -> np.ndarray:
    """Lung labels (1 right, 2 left) on the series' own grid, from the lung model run on the canonical model grid."""
    spacing = settings.segmentation.grid_spacing_zyx
    grid_ct, grid = to_model_grid(volume, spacing, max_voxels=settings.segmentation.max_grid_voxels)
    model_input = np.clip(grid_ct, *settings.segmentation.clip_hu, out=grid_ct)[None, None]
    name = segmenter.contract.outputs[0].name
    outputs = segmenter.infer({segmenter.contract.inputs[0].name: model_input})
    if name not in outputs or outputs[name].shape != model_input.shape:
        raise ContractMismatch(f"{segmenter.contract.name}: no {name} of shape {model_input.shape} in its answer")
    labels = split_left_right(outputs[name][0, 0] > 0, spacing)
    del outputs, model_input, grid_ct
    lung_ml = float(np.count_nonzero(labels)) * float(np.prod(spacing)) / 1000.0
    if lung_ml < MIN_LUNG_ML:
        raise SeriesRejected(f"no lungs found: {lung_ml:.0f} ml of lung segmented (at least {MIN_LUNG_ML:.0f} expected)")
    return labels_to_native(labels, grid, volume)


def _head_first(volume: CtVolume) -> bool:
    """Whether the z index grows towards the head: the slice normal's patient z (LPS +z is superior)."""
    return float(np.asarray(volume.direction).reshape(3, 3)[2, 2]) >= 0.0
