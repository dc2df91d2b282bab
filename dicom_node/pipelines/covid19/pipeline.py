"""The COVID-19 CT pipeline: series files -> lungs, classification and opacity quantification.

select/load -> segment (model grid, clip, `segmenter`, split left/right) -> fitness flags
(`fitness.py`: is the scan within what the method was validated for) -> classifier
input -> classify (`classifier`), in a second thread, while this one quantifies and describes
the opacity pattern and its RSNA category (`category.py`); then the masks go back to the native grid. Each step's wall time is
recorded in `timings` (seconds; the two threads' steps overlap). Data problems raise `SeriesRejected`
(or `SeriesNotEligible`, job skipped); `InferenceUnavailable` from a model propagates
so that the worker re-queues the job.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.multival import MultiValue

from dicom_node.inference.base import ContractMismatch, InferenceModel
from dicom_node.pipelines.covid19.category import RsnaAssessment, rsna_category
from dicom_node.pipelines.covid19.classifier_input import build_classifier_input
from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.fitness import FitnessFlag, assess_fitness, mediastinal_contact_flag
from dicom_node.pipeline.harmonise import ImageQuality, quality_flags
from dicom_node.pipeline.lungs import split_left_right
from dicom_node.pipelines.covid19.opacity import Measurements, measure_opacity, opacity_masks
from dicom_node.pipeline.pattern import OpacityPattern, describe_opacity
from dicom_node.pipeline.resample import labels_to_native, mask_to_native, to_model_grid
from dicom_node.pipeline.settings import PipelineSettings
from dicom_node.pipeline.spill import spill_to_disk
from dicom_node.pipeline.timing import timed
from dicom_node.pipeline.volume import CtVolume, load_series

MIN_LUNG_ML = 200.0
BASELINE_SCORE_KIND = "baseline index, not a probability"


@dataclass
class Classification:
    """What the classifier said, and which classifier said it.

    `scores` are the model's outputs per class under the Clara contract: a trained model's
    probabilities; the embedded baseline's logistic index of peripheral opacity, which is
    not a probability (nothing calibrated it) and is never shown as one (`score_kind`).
    """

    model_name: str
    model_version: str
    baseline: bool  # True for the explainable baseline ("dicom-node-opacity-baseline"), never shown as a trained model
    class_names: tuple[str, ...]  # ("non-COVID", "COVID-19")
    scores: tuple[float, ...]  # index 0 non-COVID, 1 COVID-19

    @property
    def score_kind(self) -> str:
        """What a score is, in the words every output uses: "probability" or the baseline's "index"."""
        return BASELINE_SCORE_KIND if self.baseline else "probability"

    def score_label(self, class_name: str) -> str:
        """e.g. "Probability of COVID-19 (model x)", or "Baseline index for COVID-19 (not a probability)"."""
        if self.baseline:
            return f"Baseline index for {class_name} (not a probability)"
        return f"Probability of {class_name} ({self.model_name})"


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
    category: RsnaAssessment | None = None  # the RSNA reporting category from the pattern; None where not computed
    image_quality: ImageQuality | None = None  # noise and sharpness, and the harmonisation; None where not computed


__all__ = [
    "Classification",
    "FitnessFlag",
    "ImageQuality",
    "Measurements",
    "OpacityPattern",
    "PipelineResult",
    "RsnaAssessment",
    "analyse_volume",
    "run_covid19",
]


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
    with timed(timings, "load"):
        volume = load_series(paths, settings.selection, settings.load)
    return analyse_volume(volume, segmenter, classifier, settings, spill_dir, timings)


def analyse_volume(
    volume: CtVolume,
    segmenter: InferenceModel,
    classifier: InferenceModel,
    settings: PipelineSettings = PipelineSettings(),
    spill_dir: Path | None = None,
    timings: dict[str, float] | None = None,
) -> PipelineResult:
    """Everything after loading, for a volume in memory (`run_covid19`; validation feeds it re-filtered scans)."""
    timings = {} if timings is None else timings
    spacing = settings.segmentation.grid_spacing_zyx
    with timed(timings, "segment"):
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
    with timed(timings, "fitness"):
        fitness = tuple(assess_fitness(volume, grid_ct, labels, settings.fitness))
    # The classifier needs only the grid CT and the lungs: a second thread runs it while this one
    # quantifies and describes the opacity (a Triton call waits on the network; numpy and scipy
    # release the GIL for most of their work). The masks go back to the native grid once it is done:
    # its temporaries and the native masks never add up (on P001 it ends with the description).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify") as pool:
        classified = pool.submit(_classify, classifier, grid_ct, labels, spacing, settings, timings)
        with timed(timings, "quantify"):
            masks = opacity_masks(grid_ct, labels, spacing, settings.opacity)
            opacity, high = masks.opacity, masks.high_opacity
            image_quality = _with_header_kernel(masks.image_quality, volume)
            if image_quality is not None:
                fitness += tuple(quality_flags(image_quality, settings.opacity.harmonisation))
            against_mediastinum = mediastinal_contact_flag(opacity, labels, spacing, settings.fitness)
            if against_mediastinum is not None:
                fitness += (against_mediastinum,)
            del masks
            measurements = measure_opacity(opacity, high, labels, float(np.prod(spacing)) / 1000.0)
        del grid_ct
        with timed(timings, "describe"):
            pattern = describe_opacity(opacity, high, labels, spacing)
            del high
            category = rsna_category(pattern, measurements.opacity_volume_ml)
        classification = classified.result()
    with timed(timings, "to_native"):
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
        category=category,
        image_quality=image_quality,
    )


def _with_header_kernel(quality: ImageQuality | None, volume: CtVolume) -> ImageQuality | None:
    """The measured quality with the series' ConvolutionKernel beside it, for a reader (it decides nothing)."""
    if quality is None:
        return None
    first = next((h for h in volume.source_headers if h is not None), None)
    kernel = first.get("ConvolutionKernel", "") if first is not None else ""
    text = "\\".join(str(k) for k in kernel) if isinstance(kernel, MultiValue) else str(kernel)
    return replace(quality, header_kernel=text)


def _classify(
    classifier: InferenceModel,
    grid_ct: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float, float],
    settings: PipelineSettings,
    timings: dict[str, float],
) -> Classification:
    """The classifier's answer for the lungs on the model grid (`grid_ct` and `labels` are only read)."""
    with timed(timings, "classifier_input"):
        tensor = build_classifier_input(grid_ct, labels, spacing, settings.classifier_input)
    with timed(timings, "classify"):
        outputs = _single_output(classifier, {classifier.contract.inputs[0].name: tensor}).reshape(-1)
    return Classification(
        model_name=classifier.contract.name,
        model_version=classifier.contract.version,
        baseline=bool(getattr(classifier, "baseline", False)),
        class_names=classifier.contract.class_names or tuple(str(i) for i in range(outputs.size)),
        scores=tuple(float(p) for p in outputs),
    )


def _single_output(model: InferenceModel, inputs: dict[str, np.ndarray]) -> np.ndarray:
    outputs = model.infer(inputs)
    name = model.contract.outputs[0].name
    if name not in outputs:
        raise ContractMismatch(f"{model.contract.name}: output tensor {name} missing (got {sorted(outputs)})")
    return outputs[name]

