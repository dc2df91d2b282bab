"""The HTTP server inside the node: started with it on `http.port`, absent with port 0, stopped with it."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from dicom_node.config import Config
from dicom_node.node import Node
from tests.web.conftest import free_port, make_config


def node_config(data_dir: Path, http_port: int) -> Config:
    return make_config(
        data_dir,
        dicom={"host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0},
        http={"host": "127.0.0.1", "port": http_port, "token": "t0ken"},
        jobs={"workers": 0},
    )


def test_node_serves_http_on_its_port(tmp_path: Path) -> None:
    port = free_port()
    node = Node(node_config(tmp_path, port))
    node.start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        assert httpx.get(f"{base}/api/jobs").status_code == 401
        assert httpx.get(f"{base}/api/jobs", headers={"Authorization": "Bearer t0ken"}).json() == []
        ready = httpx.get(f"{base}/ready", headers={"Authorization": "Bearer t0ken"}).json()
        assert ready["ready"] is True
    finally:
        node.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health")


def test_port_zero_disables_http(tmp_path: Path) -> None:
    node = Node(node_config(tmp_path, 0))
    node.start()
    try:
        assert node.http is None
    finally:
        node.stop()


def test_port_in_use_stops_start_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        node = Node(node_config(tmp_path, taken.getsockname()[1]))
        try:
            with pytest.raises(OSError, match="HTTP port .* is already in use: choose another with --http-port"):
                node.start()
        finally:
            node.stop()
