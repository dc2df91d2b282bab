"""The configured contract against a served one: gaps filled from the model, disagreements named."""

from __future__ import annotations

import pytest

from dicom_node.inference.base import ContractMismatch, ModelContract, TensorSpec
from dicom_node.inference.contract import configured_contract, resolve_contract
from dicom_node.inference.settings import ModelSettings
from dicom_node.pipelines.covid19.plugin import CovidClassifierSettings

SERVED = ModelContract(
    name="classification_covid-19_v1",
    version="1",
    inputs=(TensorSpec("NV_MODEL_INPUT", (-1, 1, 192, 192, 64), "float32"),),
    outputs=(TensorSpec("NV_MODEL_OUTPUT", (-1, 2), "float32"),),
)


def test_unset_names_dims_and_dtypes_come_from_the_served_model() -> None:
    configured = configured_contract(ModelSettings(model_name="classification_covid-19_v1"))

    resolved = resolve_contract(configured, SERVED, "Triton at grpc://h:8001")

    assert resolved.inputs == SERVED.inputs
    assert resolved.outputs == SERVED.outputs
    assert resolved.version == "1"


def test_configured_dims_narrow_the_served_wildcards() -> None:
    resolved = resolve_contract(configured_contract(CovidClassifierSettings()), SERVED, "here")

    assert resolved.inputs[0] == TensorSpec("NV_MODEL_INPUT", (1, 1, 192, 192, 64), "float32")
    assert resolved.outputs[0].dims == (1, 2)
    assert resolved.class_names == ("non-COVID", "COVID-19")


def test_a_wrong_shape_names_the_tensor_and_both_shapes() -> None:
    configured = configured_contract(CovidClassifierSettings(input_dims=(1, 1, 192, 192, 32)))

    with pytest.raises(ContractMismatch) as caught:
        resolve_contract(configured, SERVED, "Triton at http://h:8000")

    message = str(caught.value)
    assert "'NV_MODEL_INPUT'" in message
    assert "[1, 1, 192, 192, 32]" in message
    assert "[-1, 1, 192, 192, 64]" in message
    assert "http://h:8000" in message


def test_a_wrong_dtype_is_named() -> None:
    configured = configured_contract(CovidClassifierSettings(output_dtype="float16"))

    with pytest.raises(ContractMismatch, match="output 'NV_MODEL_OUTPUT': expected dtype float16.*float32"):
        resolve_contract(configured, SERVED, "here")


def test_an_unknown_tensor_name_lists_the_served_ones() -> None:
    configured = configured_contract(CovidClassifierSettings(input_name="INPUT__0"))

    with pytest.raises(ContractMismatch, match=r"no input 'INPUT__0'; its inputs are \['NV_MODEL_INPUT'\]"):
        resolve_contract(configured, SERVED, "here")


def test_an_unset_name_is_ambiguous_when_the_model_has_several() -> None:
    served = ModelContract("m", "1", SERVED.inputs, (*SERVED.outputs, TensorSpec("FEATURES", (-1, 1024), "float32")))

    with pytest.raises(ContractMismatch, match="2 outputs .* configure the output name"):
        resolve_contract(configured_contract(ModelSettings(model_name="m")), served, "here")
