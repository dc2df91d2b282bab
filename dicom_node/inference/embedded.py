"""What every in-process model shares: the tensor names and the input check.

Embedded models honour the same `ModelContract` a Triton model would (tensor names in Clara Train 3's
default `NV_MODEL_INPUT`/`NV_MODEL_OUTPUT` style), so a pipeline cannot tell them apart. The models
themselves live with what they compute: the classical lung segmentation in `pipeline/lung_model.py`, the
COVID-19 opacity baseline in `pipelines/covid19/baseline_model.py`; each pipeline builds its own
(`Pipeline.embedded_model`).
"""

from __future__ import annotations

import numpy as np

from dicom_node.inference.base import ContractMismatch, ModelContract

INPUT, OUTPUT = "NV_MODEL_INPUT", "NV_MODEL_OUTPUT"


def check_inputs(contract: ModelContract, inputs: dict[str, np.ndarray]) -> None:
    """Raise ContractMismatch naming the tensor unless `inputs` match the contract's inputs."""
    for spec in contract.inputs:
        if spec.name not in inputs:
            raise ContractMismatch(f"{contract.name}: input tensor {spec.name} missing (got {sorted(inputs)})")
        array = inputs[spec.name]
        if not spec.accepts(array.shape) or array.dtype != np.dtype(spec.dtype):
            raise ContractMismatch(
                f"{contract.name}: input {spec.name} is {array.dtype}{list(array.shape)}, "
                f"expected {spec.dtype}{list(spec.dims)}"
            )
