"""TritonModel never waits forever, whatever the other end does (no tritonserver needed)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dicom_node.inference.base import InferenceUnavailable
from dicom_node.inference.settings import ModelSettings
from dicom_node.pipelines.covid19.plugin import CovidClassifierSettings
from dicom_node.inference.triton import TritonModel
from tests.triton_server import free_port

FAST = {"retries": 2, "backoff_s": 0.1, "connect_timeout_s": 0.5, "request_timeout_s": 0.5}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung server."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stopping.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_a_hung_server_gives_unavailable_within_the_bound(silent_server: int, scheme: str) -> None:
    model = TritonModel(CovidClassifierSettings(backend="triton", url=f"{scheme}://127.0.0.1:{silent_server}", **FAST))

    started = time.monotonic()
    with pytest.raises(InferenceUnavailable, match=r"3 attempts"):
        model.check_ready()

    # 3 attempts of at most 0.5 s each plus 0.1 + 0.2 s of backoff.
    assert time.monotonic() - started < 4.0


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_nothing_listening_gives_unavailable_naming_url_and_model(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}"
    model = TritonModel(ModelSettings(backend="triton", url=url, model_name="covid_classifier", **FAST))

    with pytest.raises(InferenceUnavailable) as caught:
        model.check_ready()

    assert str(caught.value).startswith(f"Triton at {url} did not answer the check of model 'covid_classifier' (3 attempts in ")


def test_a_url_without_a_triton_scheme_is_refused_when_configured() -> None:
    with pytest.raises(ValueError, match="grpc://host:port"):
        ModelSettings(backend="triton", url="triton:8001", model_name="m")
