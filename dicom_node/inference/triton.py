"""A model served by NVIDIA Triton Inference Server, over HTTP (binary tensors) or gRPC.

Clara's adapter could sit forever at "wait until TRTIS is ready".  Here every call
has a client timeout and every wait a bounded number of attempts with exponential
backoff: a server that is down, starting or still loading the model raises
`InferenceUnavailable` (the worker re-queues the job with that reason), a model
that does not take what the node sends raises `ContractMismatch`.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from dicom_node import metrics
from dicom_node.inference.base import (
    ContractMismatch,
    InferenceError,
    InferenceUnavailable,
    ModelContract,
    TensorSpec,
)
from dicom_node.inference.contract import configured_contract, resolve_contract
from dicom_node.inference.settings import ModelSettings

T = TypeVar("T")

#: gRPC status codes and HTTP statuses worth another attempt: the server is down,
#: overloaded or still loading the model.
TRANSIENT_STATUSES = frozenset({
    "StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED",
    "StatusCode.CANCELLED", "502", "503", "504",
})


class _Transient(Exception):
    """One attempt failed in a way that a later attempt may not."""


class _Client:
    """The few Triton calls the node makes, alike for both protocols (tritonclient's APIs differ slightly).

    The protocol's client module is imported here, not with this module: gRPC's and
    gevent's (23 MiB) would otherwise sit in every node, the embedded default included.
    """

    def __init__(self, scheme: str, address: str, settings: ModelSettings) -> None:
        self._grpc = scheme == "grpc"
        self._module: Any = importlib.import_module("tritonclient.grpc" if self._grpc else "tritonclient.http")
        self._control_timeout = settings.connect_timeout_s
        self._request_timeout = settings.request_timeout_s
        if self._grpc:
            self._control = self._data = self._module.InferenceServerClient(address)
        else:
            # geventhttpclient has one timeout per client: a short one for the
            # readiness and metadata calls, a long one for inference.
            ssl = scheme == "https"
            self._control = self._module.InferenceServerClient(
                address, ssl=ssl, connection_timeout=settings.connect_timeout_s,
                network_timeout=settings.connect_timeout_s)
            self._data = self._module.InferenceServerClient(
                address, ssl=ssl, connection_timeout=settings.connect_timeout_s,
                network_timeout=settings.request_timeout_s)

    def _control_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._grpc:
            kwargs["client_timeout"] = self._control_timeout
        return getattr(self._control, method)(*args, **kwargs)

    def server_live(self) -> bool:
        return bool(self._control_call("is_server_live"))

    def model_ready(self, name: str, version: str) -> bool:
        return bool(self._control_call("is_model_ready", name, version))

    def model_states(self) -> dict[str, str]:
        """Model name -> "STATE: reason" from the repository index, to say why a model is not ready."""
        kwargs = {"as_json": True} if self._grpc else {}
        index = self._control_call("get_model_repository_index", **kwargs)
        models = index.get("models", []) if isinstance(index, dict) else index
        return {m["name"]: f"{m.get('state', 'UNKNOWN')}: {m.get('reason', '')}".rstrip(": ") for m in models}

    def metadata(self, name: str, version: str) -> dict[str, Any]:
        kwargs = {"as_json": True} if self._grpc else {}
        return self._control_call("get_model_metadata", name, version, **kwargs)

    def config(self, name: str, version: str) -> dict[str, Any]:
        kwargs = {"as_json": True} if self._grpc else {}
        config = self._control_call("get_model_config", name, version, **kwargs)
        return config.get("config", config)

    def infer(self, name: str, version: str, arrays: dict[str, np.ndarray], outputs: list[str]) -> Any:
        module = self._module
        inputs = []
        for tensor_name, array in arrays.items():
            tensor = module.InferInput(tensor_name, list(array.shape), np_to_triton_dtype(array.dtype))
            if self._grpc:
                tensor.set_data_from_numpy(array)
            else:
                tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        requested = [
            module.InferRequestedOutput(out) if self._grpc else module.InferRequestedOutput(out, binary_data=True)
            for out in outputs
        ]
        kwargs = {"client_timeout": self._request_timeout} if self._grpc else {}
        return self._data.infer(name, inputs, model_version=version, outputs=requested, **kwargs)

    def close(self) -> None:
        self._control.close()
        if self._data is not self._control:
            self._data.close()


class TritonModel:
    """`InferenceModel` for one model on a Triton server; the URL's scheme picks HTTP or gRPC.

    `contract` is what the server's model metadata and config say, within what the
    settings require; `check_ready()` reads it, and so does the first use of
    `contract` or `infer()` (bounded like every call: InferenceUnavailable when the
    server cannot be reached).  `baseline` is True when the served model says so in
    its config (parameter `baseline`: "true"), as the node's own opacity baseline
    does, so that reports do not present it as a trained classifier.
    One client per thread: the worker threads share the model, and tritonclient's
    HTTP client (gevent) must not be shared between threads.
    """

    def __init__(self, settings: ModelSettings) -> None:
        if settings.url is None:
            raise ValueError(f"model {settings.model_name}: no Triton url (InferenceSettings.on_server supplies [models] url)")
        parts = urlsplit(settings.url)  # validated by ModelSettings or InferenceSettings
        self.settings = settings
        self.baseline = False
        self._contract: ModelContract | None = None
        self._scheme = parts.scheme
        self._address = parts.netloc
        self._where = f"Triton at {settings.url}"
        self._local = threading.local()

    @property
    def contract(self) -> ModelContract:
        return self._contract or self._resolve()

    def check_ready(self) -> None:
        """Server live, model ready, contract as configured; bounded by the retry settings."""
        self._resolve()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_inputs(inputs)
        names = [spec.name for spec in self.contract.outputs]
        started = time.perf_counter()
        result = self._attempts(f"the inference request of model {self.settings.model_name!r}", lambda client: self._infer_once(client, inputs, names))
        metrics.observe_inference(self.contract.name, "triton", time.perf_counter() - started)
        outputs = {name: result.as_numpy(name) for name in names}
        for spec in self.contract.outputs:
            _check_array("output", spec, outputs[spec.name], self._where)
        return outputs

    def close(self) -> None:
        """Close this thread's connections (others close when their threads end)."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def _client(self) -> _Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _Client(self._scheme, self._address, self.settings)
        return client

    def _attempts(self, what: str, call: Callable[[_Client], T]) -> T:
        """Run `call` with backoff between transient failures; give up as InferenceUnavailable."""
        started = time.monotonic()
        delays = [min(self.settings.backoff_s * 2**i, self.settings.backoff_max_s)
                  for i in range(self.settings.retries)]
        for delay in [0.0, *delays]:
            time.sleep(delay)
            try:
                return call(self._client())
            except _Transient as exc:
                reason = str(exc)
            except (OSError, InferenceServerException) as exc:
                if isinstance(exc, InferenceServerException) and exc.status() not in TRANSIENT_STATUSES:
                    raise InferenceError(f"{self._where} refused {what}: {exc.message()}") from exc
                reason = _describe(exc)
            self.close()  # a timed-out connection may be half-used: start afresh
        raise InferenceUnavailable(
            f"{self._where} did not answer {what} ({len(delays) + 1} attempts in {time.monotonic() - started:.1f} s): {reason}"
        )

    def _resolve(self) -> ModelContract:
        self._contract = self._attempts(f"the check of model {self.settings.model_name!r}", self._fetch_contract)
        return self._contract

    def _fetch_contract(self, client: _Client) -> ModelContract:
        name, version = self.settings.model_name, self.settings.model_version
        # Live, not "ready": with strict readiness (the default) a server is not
        # ready while any of its models is not, including models the node never calls.
        if not client.server_live():
            raise _Transient("server not live")
        if not client.model_ready(name, version):
            states = client.model_states()
            if name not in states:
                raise ContractMismatch(f"{self._where} serves no model {name!r}; it has {sorted(states)}")
            raise _Transient(f"model {name!r} version {version or 'latest'} not ready ({states[name]})")
        served = _served_contract(client.metadata(name, version), version)
        contract = resolve_contract(configured_contract(self.settings), served, self._where)
        config = client.config(name, version)
        _check_batch_size(contract, config, self._where)
        baseline = config.get("parameters", {}).get("baseline", {}).get("string_value", "")
        self.baseline = baseline.lower() == "true"
        return contract

    def _infer_once(self, client: _Client, inputs: dict[str, np.ndarray], names: list[str]) -> Any:
        try:
            return client.infer(self.contract.name, self.settings.model_version, inputs, names)
        except InferenceServerException as exc:
            # A restarting server answers "unknown model" while it loads its models:
            # that is a wait, not a failure of this job.
            if exc.status() not in TRANSIENT_STATUSES and not (
                client.server_live() and client.model_ready(self.contract.name, self.settings.model_version)
            ):
                raise _Transient(f"model not ready: {exc.message()}") from exc
            raise

    def _check_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        missing = [spec.name for spec in self.contract.inputs if spec.name not in inputs]
        if missing:
            raise ContractMismatch(f"{self._where}: inputs {missing} not given (got {sorted(inputs)})")
        for spec in self.contract.inputs:
            _check_array("input", spec, inputs[spec.name], self._where)


def _served_contract(metadata: dict[str, Any], version: str) -> ModelContract:
    """Triton's model metadata as a ModelContract (gRPC's JSON gives int64 dims as strings)."""
    versions = sorted(metadata.get("versions", []), key=int)

    def specs(key: str) -> tuple[TensorSpec, ...]:
        return tuple(
            TensorSpec(t["name"], tuple(int(d) for d in t["shape"]), np.dtype(triton_to_np_dtype(t["datatype"])).name)
            for t in metadata.get(key, [])
        )

    return ModelContract(
        name=metadata["name"],
        version=version or (versions[-1] if versions else ""),
        inputs=specs("inputs"),
        outputs=specs("outputs"),
    )


def _check_batch_size(contract: ModelContract, config: dict[str, Any], where: str) -> None:
    """A model batching up to max_batch_size cannot take a larger first axis."""
    max_batch = int(config.get("max_batch_size", 0))
    for spec in contract.inputs:
        if max_batch > 0 and spec.dims and spec.dims[0] > max_batch:
            raise ContractMismatch(
                f"input {spec.name!r}: expected batch of {spec.dims[0]}, model {contract.name!r} ({where}) "
                f"takes at most max_batch_size {max_batch}"
            )


def _check_array(kind: str, spec: TensorSpec, array: np.ndarray | None, where: str) -> None:
    if array is None:
        raise ContractMismatch(f"{kind} {spec.name!r}: {where} returned no data")
    if array.dtype.name != spec.dtype or not spec.accepts(array.shape):
        raise ContractMismatch(
            f"{kind} {spec.name!r}: expected shape {list(spec.dims)} {spec.dtype}, "
            f"got {list(array.shape)} {array.dtype.name} ({where})"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InferenceServerException):
        return f"{exc.message()} [{exc.status()}]"
    return f"{type(exc).__name__}: {exc}"
