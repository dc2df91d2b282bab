"""run_covid19's error contract: data problems are SeriesRejected, an unavailable model propagates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.inference.base import InferenceUnavailable, ModelContract, TensorSpec
from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.pipeline import run_covid19
from dicom_node.pipeline.errors import SeriesNotEligible, SeriesRejected


class ServerDown:
    """A model whose server is not reachable."""

    contract = ModelContract("down", "1", (TensorSpec("NV_MODEL_INPUT", (1, 1, -1, -1, -1), "float32"),), (TensorSpec("NV_MODEL_OUTPUT", (1, 1, -1, -1, -1), "uint8"),))

    def check_ready(self) -> None:
        raise InferenceUnavailable("server down")

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise InferenceUnavailable("connection refused")


class SegmentsNothing(EmbeddedLungSegmenter):
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"NV_MODEL_OUTPUT": np.zeros(inputs["NV_MODEL_INPUT"].shape, np.uint8)}


def test_unavailable_inference_propagates_for_a_retry(clear_series: list[Path]):
    with pytest.raises(InferenceUnavailable):
        run_covid19(clear_series, ServerDown(), EmbeddedOpacityBaseline())


def test_a_series_without_lungs_is_rejected_with_the_reason(clear_series: list[Path]):
    with pytest.raises(SeriesRejected, match="no lungs found"):
        run_covid19(clear_series, SegmentsNothing(), EmbeddedOpacityBaseline())


def test_a_non_ct_series_is_skipped_before_any_inference(clear_series: list[Path], tmp_path: Path):
    for path in clear_series:
        ds = pydicom.dcmread(path)
        ds.Modality = "PT"
        ds.save_as(tmp_path / path.name)
    with pytest.raises(SeriesNotEligible, match="modality PT"):
        run_covid19(sorted(tmp_path.glob("*.dcm")), ServerDown(), ServerDown())
