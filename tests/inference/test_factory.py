"""build_models: embedded or Triton per model, and the embedded contract checked at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dicom_node.inference.base import ContractMismatch
from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.inference.factory import build_models
from dicom_node.inference.settings import InferenceSettings, LungSegmentationSettings
from dicom_node.pipelines.covid19.plugin import CovidClassifierSettings
from dicom_node.inference.triton import TritonModel
from dicom_node.pipeline.settings import PipelineSettings, SegmentationSettings
from dicom_node.pipelines.covid19.plugin import COVID19


def test_defaults_are_the_embedded_models_with_the_pipeline_settings() -> None:
    pipeline = PipelineSettings(segmentation=SegmentationSettings(grid_spacing_zyx=(5.0, 0.8, 0.8)))

    models = build_models(InferenceSettings(), COVID19, pipeline)
    segmenter, classifier = models["lung_segmentation"], models["covid_classifier"]

    assert isinstance(segmenter, EmbeddedLungSegmenter) and segmenter.spacing == (5.0, 0.8, 0.8)
    assert isinstance(classifier, EmbeddedOpacityBaseline)


def test_each_model_can_be_moved_to_triton_on_its_own() -> None:
    settings = InferenceSettings(covid_classifier=CovidClassifierSettings(backend="triton", url="grpc://triton:8001"))

    models = build_models(settings, COVID19)
    segmenter, classifier = models["lung_segmentation"], models["covid_classifier"]

    assert isinstance(segmenter, EmbeddedLungSegmenter)
    assert isinstance(classifier, TritonModel) and classifier.settings.url == "grpc://triton:8001"


def test_a_configured_contract_the_embedded_model_does_not_meet_fails_at_start_up() -> None:
    settings = InferenceSettings(lung_segmentation=LungSegmentationSettings(output_dtype="float32"))

    with pytest.raises(ContractMismatch, match="output 'NV_MODEL_OUTPUT': expected dtype float32.*uint8"):
        build_models(settings, COVID19)


def test_a_node_with_embedded_models_does_not_load_tritons_client_libraries() -> None:
    """gRPC's and gevent's modules cost every node 23 MiB; only a Triton-backed model needs them."""
    probe = (
        "import sys; from dicom_node.node import Node; from dicom_node.inference.factory import build_models;"
        "from dicom_node.inference.settings import InferenceSettings; from dicom_node.pipelines.registry import PIPELINES;"
        "[build_models(InferenceSettings(), pipeline) for pipeline in PIPELINES.values()];"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'gevent', 'geventhttpclient')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
