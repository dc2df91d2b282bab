"""Serve one of the node's own `InferenceModel`s from Triton's Python backend.

Imported only inside the Python backend's stub process (it needs the backend's
`triton_python_backend_utils`).  Each model directory's `1/model.py` re-exports
`TritonPythonModel`; its `config.pbtxt` names the model class in the parameter
`model_class` ("module:Class") and its keyword arguments, as JSON, in `model_kwargs`.
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
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

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
    """Python-backend model that forwards requests to the configured `InferenceModel`.

    With `max_batch_size` > 0 (dynamic batching), the requests Triton gathered are
    stacked along the batch axis and run as one call, then split again.
    """

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        module_name, class_name = parameters["model_class"]["string_value"].split(":")
        kwargs = json.loads(parameters.get("model_kwargs", {}).get("string_value", "{}"))
        self.model = getattr(importlib.import_module(module_name), class_name)(**kwargs)
        self.input_names = [spec["name"] for spec in config["input"]]
        self.output_names = [spec["name"] for spec in config["output"]]
        self.batching = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests: list[Any]) -> list[Any]:
        groups = [requests] if self.batching else [[request] for request in requests]
        responses = []
        for group in groups:
            try:
                responses += [_response(self.output_names, outputs) for outputs in self._infer(group)]
            except Exception as exc:  # a failed call fails its own requests, not the others
                responses += [_error_response(exc) for _ in group]
        return responses

    def _infer(self, requests: list[Any]) -> list[dict[str, np.ndarray]]:
        """One model call for all requests; outputs split back by each request's batch size."""
        per_request = [{name: _input_array(request, name) for name in self.input_names} for request in requests]
        if len(per_request) == 1:
            return [self.model.infer(per_request[0])]
        sizes = [len(arrays[self.input_names[0]]) for arrays in per_request]
        stacked = {name: np.concatenate([arrays[name] for arrays in per_request]) for name in self.input_names}
        outputs = self.model.infer(stacked)
        bounds = np.cumsum([0, *sizes])
        return [{name: outputs[name][a:b] for name in self.output_names} for a, b in zip(bounds[:-1], bounds[1:])]


def _response(names: list[str], outputs: dict[str, np.ndarray]) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[_output_tensor(name, outputs[name]) for name in names])


def _error_response(exc: Exception) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}"))
