"""A STOW-RS body over http.max_stow_mb is refused with 413 before it is held in memory, declared or streamed."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from dicom_node.web.api import create_app
from tests.web.conftest import LOOPBACK_CLIENT, Site

RELATED = 'multipart/related; type="application/dicom"; boundary=b0'
MIB = 2**20


def test_a_declared_body_over_the_limit_gets_413_naming_the_setting(small_site: Site) -> None:
    with small_site.client(http={"max_stow_mb": 1}) as http:
        response = http.post("/dicomweb/studies", content=b"\0" * (2 * MIB), headers={"Content-Type": RELATED})
    assert response.status_code == 413
    assert "http.max_stow_mb (1 MiB)" in response.json()["detail"]


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(small_site: Site) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(64):
            yield b"\0" * (MIB // 4)

    with small_site.client(http={"max_stow_mb": 1}) as http:
        response = http.post("/dicomweb/studies", content=chunks(), headers={"Content-Type": RELATED})
    assert response.status_code == 413
    # Under the limit the same request is read and parsed: a body that is no multipart message gets 400, not 413.
    with small_site.client(http={"max_stow_mb": 1}) as http:
        small = http.post("/dicomweb/studies", content=b"\0" * (MIB // 2), headers={"Content-Type": RELATED})
    assert small.status_code == 400, small.text


def test_a_body_the_nodes_memory_for_peers_has_no_room_for_gets_503_and_holds_nothing_after(small_site: Site) -> None:
    context = small_site.context(http={"max_stow_mb": 8}, dicom={"peer_memory_mb": 2})
    assert context.peer_memory is not None
    with TestClient(create_app(context), client=LOOPBACK_CLIENT, base_url="http://localhost") as http:
        declared = http.post("/dicomweb/studies", content=b"\0" * (3 * MIB), headers={"Content-Type": RELATED})
        streamed = http.post("/dicomweb/studies", content=iter([b"\0" * MIB] * 3), headers={"Content-Type": RELATED})
        assert context.peer_memory.held == 0  # given back at once
        small = http.post("/dicomweb/studies", content=b"\0" * (MIB // 2), headers={"Content-Type": RELATED})
    for response in (declared, streamed):
        assert response.status_code == 503 and response.headers["retry-after"] == "10"
        assert "dicom.peer_memory_mb" in response.json()["detail"]
    assert small.status_code == 400 and context.peer_memory.held == 0
