"""The COVID-19 CT pipeline: series files -> lungs, classification and opacity quantification.

select/load -> segment (model grid, clip, `segmenter`, split left/right) -> fitness flags
(`fitness.py`: is the scan within what the method was validated for) -> classifier
input -> classify (`classifier`), in a second thread, while this one quantifies and describes
the opacity pattern; then the masks go back to the native grid. Each step's wall time is
recorded in `timings` (seconds; the two threads' steps overlap). Data problems raise `SeriesRejected`
(or `SeriesNotEligible`, job skipped); `InferenceUnavailable` from a model propagates
so that the worker re-queues the job.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dicom_node.inference.base import ContractMismatch, InferenceModel
from dicom_node.pipeline.classifier_input import build_classifier_input
from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.fitness import FitnessFlag, assess_fitness
from dicom_node.pipeline.lungs import split_left_right
from dicom_node.pipeline.opacity import Measurements, measure_opacity, opacity_masks
from dicom_node.pipeline.pattern import OpacityPattern, describe_opacity
from dicom_node.pipeline.resample import labels_to_native, mask_to_native, to_model_grid
from dicom_node.pipeline.settings import PipelineSettings
from dicom_node.pipeline.spill import spill_to_disk
from dicom_node.pipeline.volume import CtVolume, load_series

MIN_LUNG_ML = 200.0


@dataclass
class Classification:
    """What the classifier said, and which classifier said it."""

    model_name: str
    model_version: str
    baseline: bool  # True for the explainable baseline ("dicom-node-opacity-baseline"), never shown as a trained model
    class_names: tuple[str, ...]  # ("non-COVID", "COVID-19")
    probabilities: tuple[float, ...]  # index 0 non-COVID, 1 COVID-19


@dataclass
class PipelineResult:
    """Everything the output writers need; masks are on the series' native (z, y, x) grid."""

    volume: CtVolume
    lung_labels: np.ndarray  # uint8: 0 background, 1 right lung, 2 left lung
    opacity_mask: np.ndarray  # bool, inside the lungs
    measurements: Measurements
    classification: Classification
    timings: dict[str, float] = field(default_factory=dict)
    pattern: OpacityPattern | None = None  # distribution and zone-based severity; None where not computed
    fitness: tuple[FitnessFlag, ...] = ()  # conditions outside the validated range; empty: none found


__all__ = ["Classification", "FitnessFlag", "Measurements", "OpacityPattern", "PipelineResult", "run_covid19"]


def run_covid19(
    paths: Sequence[Path | str],
    segmenter: InferenceModel,
    classifier: InferenceModel,
    settings: PipelineSettings = PipelineSettings(),
    spill_dir: Path | None = None,
) -> PipelineResult:
    """Run the whole image pipeline on one series' files.

    With `spill_dir`, the HU volume leaves memory once the model grid is built (`spill.py`): the result's
    `volume.hu` is then a read-only array mapped from an anonymous file there.
    """
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        volume = load_series(paths, settings.selection, settings.load)
    spacing = settings.segmentation.grid_spacing_zyx
    with _timed(timings, "segment"):
        grid_ct, grid = to_model_grid(volume, spacing, max_voxels=settings.segmentation.max_grid_voxels)
        if spill_dir is not None:
            volume = replace(volume, hu=spill_to_disk(volume.hu, spill_dir))
        model_input = np.clip(grid_ct, *settings.segmentation.clip_hu)[None, None]
        mask = _single_output(segmenter, {segmenter.contract.inputs[0].name: model_input})
        if mask.shape != model_input.shape:
            raise ContractMismatch(f"{segmenter.contract.name}: mask of shape {mask.shape}, sent {model_input.shape}")
        del model_input
        labels = split_left_right(mask[0, 0] > 0, spacing)
        del mask  # the model's output (float32 from Triton: the grid's size again) is not read after the split
        lung_ml = float((labels > 0).sum()) * float(np.prod(spacing)) / 1000.0
        if lung_ml < MIN_LUNG_ML:
            raise SeriesRejected(f"no lungs found: {lung_ml:.0f} ml of lung segmented (at least {MIN_LUNG_ML:.0f} expected)")
    with _timed(timings, "fitness"):
        fitness = tuple(assess_fitness(volume, grid_ct, labels, settings.fitness))
    # The classifier needs only the grid CT and the lungs: a second thread runs it while this one
    # quantifies and describes the opacity (a Triton call waits on the network; numpy and scipy
    # release the GIL for most of their work). The masks go back to the native grid once it is done:
    # its temporaries and the native masks never add up (on P001 it ends with the description).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify") as pool:
        classified = pool.submit(_classify, classifier, grid_ct, labels, spacing, settings, timings)
        with _timed(timings, "quantify"):
            opacity, high = opacity_masks(grid_ct, labels, spacing, settings.opacity)
            measurements = measure_opacity(opacity, high, labels, float(np.prod(spacing)) / 1000.0)
        del grid_ct
        with _timed(timings, "describe"):
            pattern = describe_opacity(opacity, high, labels, spacing)
            del high
        classification = classified.result()
    with _timed(timings, "to_native"):
        native_lungs = labels_to_native(labels, grid, volume)
        native_opacity = mask_to_native(opacity, grid, volume, within=native_lungs)
    return PipelineResult(
        volume=volume,
        lung_labels=native_lungs,
        opacity_mask=native_opacity,
        measurements=measurements,
        classification=classification,
        timings=timings,
        pattern=pattern,
        fitness=fitness,
    )


def _classify(
    classifier: InferenceModel,
    grid_ct: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    settings: PipelineSettings,
    timings: dict[str, float],
) -> Classification:
    """The classifier's answer for the lungs on the model grid (`grid_ct` and `labels` are only read)."""
    with _timed(timings, "classifier_input"):
        tensor = build_classifier_input(grid_ct, labels, spacing, settings.classifier_input)
    with _timed(timings, "classify"):
        scores = _single_output(classifier, {classifier.contract.inputs[0].name: tensor}).reshape(-1)
    return Classification(
        model_name=classifier.contract.name,
        model_version=classifier.contract.version,
        baseline=bool(getattr(classifier, "baseline", False)),
        class_names=classifier.contract.class_names or tuple(str(i) for i in range(scores.size)),
        probabilities=tuple(float(p) for p in scores),
    )


def _single_output(model: InferenceModel, inputs: dict[str, np.ndarray]) -> np.ndarray:
    outputs = model.infer(inputs)
    name = model.contract.outputs[0].name
    if name not in outputs:
        raise ContractMismatch(f"{model.contract.name}: output tensor {name} missing (got {sorted(outputs)})")
    return outputs[name]


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = time.perf_counter() - start
