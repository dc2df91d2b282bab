"""The embedded models honour their contracts and the baseline's documented curve."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.inference.base import ContractMismatch, InferenceModel
from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.baseline import BASELINE_OPACITY, PPO_MIDPOINT, covid_index
from phantoms.chest import Phantom
from dicom_node.pipeline.resample import to_model_grid
from dicom_node.pipeline.settings import ClassifierInputSettings, OpacitySettings, SegmentationSettings
from dicom_node.pipeline.volume import CtVolume


def phantom_volume(phantom: Phantom) -> CtVolume:
    return CtVolume(phantom.hu, phantom.spacing, phantom.origin, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), "1", "1", "1", (), ())


def outputs_match(model: InferenceModel, outputs: dict[str, np.ndarray]) -> None:
    for spec in model.contract.outputs:
        assert spec.name in outputs
        assert spec.accepts(outputs[spec.name].shape), (spec, outputs[spec.name].shape)
        assert outputs[spec.name].dtype == np.dtype(spec.dtype)


def test_segmenter_honours_its_contract(clear_phantom: Phantom):
    segmenter = EmbeddedLungSegmenter()
    assert isinstance(segmenter, InferenceModel)
    segmenter.check_ready()
    settings = SegmentationSettings()
    grid, _ = to_model_grid(phantom_volume(clear_phantom), settings.grid_spacing_zyx, settings.clip_hu)
    outputs = segmenter.infer({"NV_MODEL_INPUT": grid[None, None]})
    outputs_match(segmenter, outputs)
    assert outputs["NV_MODEL_OUTPUT"].shape == (1, 1, *grid.shape)
    assert set(np.unique(outputs["NV_MODEL_OUTPUT"])) == {0, 1}


def test_baseline_honours_its_contract_and_says_it_is_a_baseline():
    classifier = EmbeddedOpacityBaseline()
    assert isinstance(classifier, InferenceModel)
    assert classifier.baseline and classifier.model_name == classifier.contract.name == "dicom-node-opacity-baseline"
    assert classifier.contract.inputs[0].dims == (1, 1, 192, 192, 64)
    assert classifier.contract.class_names == ("non-COVID", "COVID-19")
    tensor = np.zeros((1, 1, 192, 192, 64), dtype=np.float32)
    tensor[..., 40:150, 40:150, 10:50] = 0.1  # -850 HU lung, nothing else
    outputs = classifier.infer({"NV_MODEL_INPUT": tensor})
    outputs_match(classifier, outputs)
    assert outputs["NV_MODEL_OUTPUT"].sum() == pytest.approx(1.0)
    assert outputs["NV_MODEL_OUTPUT"][0, 1] < 0.05


def test_baseline_contract_follows_the_configured_layout():
    classifier = EmbeddedOpacityBaseline(ClassifierInputSettings(layout=("N", "C", "Z", "Y", "X")))
    assert classifier.contract.inputs[0].dims == (1, 1, 64, 192, 192)


@pytest.mark.parametrize(
    "inputs",
    [
        {"WRONG_NAME": np.zeros((1, 1, 192, 192, 64), np.float32)},
        {"NV_MODEL_INPUT": np.zeros((1, 1, 192, 192, 64), np.float64)},
        {"NV_MODEL_INPUT": np.zeros((1, 1, 64, 192, 192), np.float32)},
    ],
)
def test_a_wrong_tensor_is_a_contract_mismatch_naming_it(inputs):
    with pytest.raises(ContractMismatch, match="NV_MODEL_INPUT"):
        EmbeddedOpacityBaseline().infer(inputs)


def test_baseline_curve_is_the_documented_logistic():
    assert covid_index(PPO_MIDPOINT) == pytest.approx(0.5)
    assert covid_index(0.0) == pytest.approx(0.018, abs=0.001)
    assert covid_index(2.0) == pytest.approx(0.982, abs=0.001)
    values = [covid_index(p) for p in np.linspace(0, 10, 21)]
    assert values == sorted(values)


def test_the_baselines_filters_name_every_setting():
    """A default of the quantification's settings that changes, or a new one, must not change the baseline's index."""
    assert BASELINE_OPACITY.model_fields_set == set(OpacitySettings.model_fields)
