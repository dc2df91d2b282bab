"""The one interface every inference backend implements.

A model is described by a contract (tensor names, dims, dtypes) so that the
pipeline can hand the same numpy arrays to the embedded implementation or to a
Triton server, and so that a mismatch between what the node sends and what the
server expects is caught before a job runs, with a message naming the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor; -1 in dims means any size along that axis."""

    name: str
    dims: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32", "uint8", ...

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.dims) and all(d in (-1, s) for d, s in zip(self.dims, shape))


@dataclass(frozen=True)
class ModelContract:
    """What a model takes and returns; the node checks it against the server's metadata."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    class_names: tuple[str, ...] = field(default_factory=tuple)


class InferenceError(Exception):
    """Base class of inference failures."""


class InferenceUnavailable(InferenceError):
    """The backend cannot serve right now (server down, model loading): the job waits and is retried."""


class ContractMismatch(InferenceError):
    """The server's model does not take what the node is configured to send: the job fails, naming the tensor."""


@runtime_checkable
class InferenceModel(Protocol):
    """A model that the pipeline can call, whatever runs it."""

    contract: ModelContract

    def check_ready(self) -> None:
        """Raise InferenceUnavailable or ContractMismatch unless the model can serve now."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named input arrays and return named output arrays."""
