"""Results of the COVID-19 CT pipeline.

Only the data contract shared with the output step lives here until the
pipeline's orchestration lands on this branch; the pipeline branch owns this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicom_node.pipeline.volume import CtVolume


@dataclass
class Measurements:
    """Per-lung quantification; keys "left", "right", "total"."""

    lung_volume_ml: dict[str, float]
    opacity_volume_ml: dict[str, float]
    opacity_percent: dict[str, float]  # PO 0..100
    high_opacity_percent: dict[str, float]  # PHO 0..100


@dataclass
class Classification:
    """What the classifier said, and which classifier said it."""

    model_name: str
    model_version: str
    baseline: bool  # True for the explainable baseline ("dicom-node-opacity-baseline")
    class_names: tuple[str, ...]  # ("non-COVID", "COVID-19")
    probabilities: tuple[float, ...]  # index 0 non-COVID, 1 COVID-19


@dataclass
class PipelineResult:
    """Everything the output step turns into DICOM objects and result files."""

    volume: CtVolume
    lung_labels: np.ndarray  # uint8 (z, y, x): 0 background, 1 right lung, 2 left lung
    opacity_mask: np.ndarray  # bool (z, y, x)
    measurements: Measurements
    classification: Classification
    timings: dict[str, float]
