"""A real tritonserver serving deploy/triton/models, shared by the tests of this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.triton_server import MODEL_REPOSITORY, TritonEndpoints, running_tritonserver


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonEndpoints]:
    with running_tritonserver(MODEL_REPOSITORY, tmp_path_factory.mktemp("triton")) as endpoints:
        yield endpoints
