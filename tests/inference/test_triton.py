"""TritonModel against the real tritonserver running deploy/triton/models (the node's own models)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from dicom_node.inference.base import ContractMismatch, InferenceUnavailable, TensorSpec
from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.inference.settings import LungSegmentationSettings, ModelSettings
from dicom_node.pipelines.covid19.plugin import CovidClassifierSettings
from dicom_node.inference.triton import TritonModel
from dicom_node.pipelines.covid19.classifier_input import build_classifier_input
from dicom_node.pipelines.covid19.pipeline import run_covid19
from phantoms.chest import Phantom, make_phantom, write_phantom_series
from dicom_node.pipeline.settings import SegmentationSettings
from tests.triton_server import TritonEndpoints

pytestmark = pytest.mark.triton

# As model_kwargs in deploy/triton/models/lung_segmentation/config.pbtxt.
SEGMENTATION = SegmentationSettings(grid_spacing_zyx=(2.5, 1.6, 1.6))
IN, OUT = "NV_MODEL_INPUT", "NV_MODEL_OUTPUT"


def url_of(triton: TritonEndpoints, protocol: str) -> str:
    return triton.http_url if protocol == "http" else triton.grpc_url


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    """A synthetic chest CT at the segmentation grid's spacing (2.5 x 1.6 x 1.6 mm)."""
    return make_phantom(size_xyz=(224, 224, 120), seed=3)


@pytest.fixture(scope="module")
def ct_on_grid(phantom: Phantom) -> np.ndarray:
    """The CT as the node sends it to the segmenter: (1, 1, z, y, x) HU."""
    return phantom.hu.astype(np.float32)[np.newaxis, np.newaxis]


@pytest.fixture(scope="module")
def classifier_input(phantom: Phantom) -> np.ndarray:
    """The lung region resized to 192x192x64, as the node sends it to the classifier."""
    return build_classifier_input(phantom.hu, phantom.lungs, phantom.spacing)


@pytest.fixture(scope="module")
def embedded_masks(ct_on_grid: np.ndarray) -> np.ndarray:
    return EmbeddedLungSegmenter(SEGMENTATION).infer({IN: ct_on_grid})[OUT]


def test_contracts_are_read_from_the_model_metadata(triton: TritonEndpoints) -> None:
    segmenter = TritonModel(ModelSettings(backend="triton", url=triton.grpc_url, model_name="lung_segmentation"))
    classifier = TritonModel(ModelSettings(backend="triton", url=triton.http_url, model_name="covid_classifier"))

    segmenter.check_ready()
    classifier.check_ready()

    assert segmenter.contract.inputs == (TensorSpec(IN, (1, 1, -1, -1, -1), "float32"),)
    assert segmenter.contract.outputs == (TensorSpec(OUT, (1, 1, -1, -1, -1), "uint8"),)
    assert segmenter.contract.version == "1"
    assert classifier.contract.inputs == (TensorSpec(IN, (1, 1, 192, 192, 64), "float32"),)
    assert classifier.contract.outputs == (TensorSpec(OUT, (1, 2), "float32"),)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_segmentation_on_triton_equals_the_embedded_model(
    triton: TritonEndpoints, protocol: str, ct_on_grid: np.ndarray, embedded_masks: np.ndarray
) -> None:
    model = TritonModel(LungSegmentationSettings(backend="triton", url=url_of(triton, protocol)))

    masks = model.infer({IN: ct_on_grid})[OUT]

    assert (embedded_masks > 0).mean() > 0.05, "the phantom's lungs were not found: a poor test input"
    np.testing.assert_array_equal(masks, embedded_masks)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_classification_on_triton_equals_the_embedded_model(
    triton: TritonEndpoints, protocol: str, classifier_input: np.ndarray
) -> None:
    model = TritonModel(CovidClassifierSettings(backend="triton", url=url_of(triton, protocol)))

    probabilities = model.infer({IN: classifier_input})[OUT]

    expected = EmbeddedOpacityBaseline().infer({IN: classifier_input})[OUT]
    assert 0.0 < expected[0, 1] < 1.0, "a saturated probability would hide a garbled input"
    np.testing.assert_array_equal(probabilities, expected)


def test_the_pipeline_on_triton_gives_the_embedded_result(triton: TritonEndpoints, tmp_path: Path) -> None:
    """run_covid19 reads tensor names from `contract` first: with names left unset that resolves them."""
    paths = write_phantom_series(make_phantom((256, 256, 80), 0.15, seed=2), tmp_path)
    embedded = run_covid19(paths, EmbeddedLungSegmenter(), EmbeddedOpacityBaseline())

    on_triton = run_covid19(
        paths,
        TritonModel(LungSegmentationSettings(backend="triton", url=triton.grpc_url)),
        TritonModel(CovidClassifierSettings(backend="triton", url=triton.http_url)),
    )

    np.testing.assert_array_equal(on_triton.lung_labels, embedded.lung_labels)
    assert on_triton.classification.scores == embedded.classification.scores
    assert on_triton.classification.baseline, "the served opacity baseline must not pass for a trained classifier"


def test_a_wrong_configured_shape_names_the_tensor_and_both_shapes(triton: TritonEndpoints) -> None:
    settings = CovidClassifierSettings(backend="triton", url=triton.grpc_url, input_dims=(1, 1, 192, 192, 32))

    with pytest.raises(ContractMismatch) as caught:
        TritonModel(settings).check_ready()

    message = str(caught.value)
    assert f"input '{IN}'" in message
    assert "[1, 1, 192, 192, 32]" in message and "[1, 1, 192, 192, 64]" in message


def test_an_array_of_the_wrong_shape_is_refused_before_sending(triton: TritonEndpoints) -> None:
    model = TritonModel(CovidClassifierSettings(backend="triton", url=triton.http_url))

    with pytest.raises(ContractMismatch, match=r"input 'NV_MODEL_INPUT': expected shape \[1, 1, 192, 192, 64\]"):
        model.infer({IN: np.zeros((1, 1, 96, 96, 32), np.float32)})


def test_a_model_the_server_does_not_have_is_a_contract_mismatch(triton: TritonEndpoints) -> None:
    settings = ModelSettings(backend="triton", url=triton.http_url, model_name="classification_covid-19_v1")

    with pytest.raises(ContractMismatch, match="serves no model 'classification_covid-19_v1'.*covid_classifier"):
        TritonModel(settings).check_ready()


def test_a_model_being_reloaded_is_unavailable_with_its_state_and_usable_once_loaded(
    triton: TritonEndpoints, classifier_input: np.ndarray
) -> None:
    control = httpclient.InferenceServerClient(f"127.0.0.1:{triton.http_port}")
    model = TritonModel(CovidClassifierSettings(backend="triton", url=triton.grpc_url, retries=1, backoff_s=0.1))

    model.check_ready()

    control.unload_model("covid_classifier")
    try:
        # An inference call sent to a model that went away is a wait, not a failed job.
        with pytest.raises(InferenceUnavailable, match="model not ready"):
            model.infer({IN: classifier_input})
        unloading = r"model 'covid_classifier' version latest not ready \((UNLOADING|UNAVAILABLE)"
        with pytest.raises(InferenceUnavailable, match=unloading):
            model.check_ready()
    finally:
        control.load_model("covid_classifier")
        control.close()

    assert model.infer({IN: classifier_input})[OUT].shape == (1, 2)


def test_a_stopped_server_is_unavailable_within_the_retry_bound_and_usable_after_restart(
    triton: TritonEndpoints, classifier_input: np.ndarray
) -> None:
    models = [
        TritonModel(CovidClassifierSettings(
            backend="triton", url=url, retries=2, backoff_s=0.2, connect_timeout_s=1.0, request_timeout_s=10.0))
        for url in (triton.http_url, triton.grpc_url)
    ]
    for model in models:
        model.infer({IN: classifier_input})

    triton.stop()
    try:
        for model in models:
            started = time.monotonic()
            with pytest.raises(InferenceUnavailable, match=r"3 attempts"):
                model.infer({IN: classifier_input})
            assert time.monotonic() - started < 5.0
            with pytest.raises(InferenceUnavailable):
                model.check_ready()
    finally:
        triton.start()

    for model in models:
        model.check_ready()
        assert model.infer({IN: classifier_input})[OUT].shape == (1, 2)
