"""Serve one of the node's own `InferenceModel`s from Triton's Python backend.

Imported only inside the Python backend's stub process (it needs the backend's
`triton_python_backend_utils`).  Each model directory's `1/model.py` re-exports
`TritonPythonModel`; its `config.pbtxt` names the model class in the parameter
`model_class` ("module:Class") and its keyword arguments, as JSON, in `model_kwargs`
(arguments typed as pydantic settings are validated into them).
Triton thus runs the very code the node embeds, and returns identical arrays.

Tensors cross the stub boundary through DLPack, not `as_numpy()` / `Tensor(name,
array)`: stubs built with pybind11 older than 2.12 (Triton up to 24.10, the one in
nvidia-pytriton 0.7) read numpy 2's dtype itemsize as 0, so `as_numpy()` returns the
first element repeated and `Tensor()` sends zero bytes (Triton then answers with
"output tensor shape does not match size of output", or empty binary outputs).
DLPack carries dtype and shape itself and works with numpy 1 and 2, old and new stubs.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import typing
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from pydantic import BaseModel

# DLPack's name for a consumed capsule.  The 24.10 stub renames the capsules it
# consumes "used_dlpack", so numpy's capsule destructor does not recognise them and
# prints an error on every response; the stub frees the tensor itself either way.
_USED_CAPSULE = b"used_dltensor"
_set_capsule_name = ctypes.pythonapi.PyCapsule_SetName
_set_capsule_name.argtypes = [ctypes.py_object, ctypes.c_char_p]
_set_capsule_name.restype = ctypes.c_int


def _input_array(request: Any, name: str) -> np.ndarray:
    """A private copy: the tensor's shared memory is reused once the request is answered."""
    return np.from_dlpack(pb_utils.get_input_tensor_by_name(request, name)).copy()


def _output_tensor(name: str, array: np.ndarray) -> Any:
    capsule = np.ascontiguousarray(array).__dlpack__()
    tensor = pb_utils.Tensor.from_dlpack(name, capsule)
    _set_capsule_name(capsule, _USED_CAPSULE)
    return tensor


class TritonPythonModel:
    """Python-backend model that forwards each request to the configured `InferenceModel`."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        module_name, class_name = parameters["model_class"]["string_value"].split(":")
        model_class = getattr(importlib.import_module(module_name), class_name)
        kwargs = json.loads(parameters.get("model_kwargs", {}).get("string_value", "{}"))
        self.model = model_class(**_typed_arguments(model_class, kwargs))
        self.input_names = [spec["name"] for spec in config["input"]]
        self.output_names = [spec["name"] for spec in config["output"]]

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                outputs = self.model.infer({name: _input_array(request, name) for name in self.input_names})
                tensors = [_output_tensor(name, outputs[name]) for name in self.output_names]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # a failed request must not fail the others Triton handed over with it
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}")))
        return responses


def _typed_arguments(model_class: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """JSON values for constructor parameters typed as pydantic models become those models."""
    hints = typing.get_type_hints(model_class.__init__)
    return {
        name: hints[name].model_validate(value)
        if isinstance(hints.get(name), type) and issubclass(hints[name], BaseModel) else value
        for name, value in kwargs.items()
    }
