"""A node started before its PostgreSQL waits for it, bounded and saying so, instead of exiting to be restarted
(podman-compose ignores `service_healthy`; a pod's containers start together)."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from dicom_node.store.db import DatabaseUnreachable, wait_for_database
from tests.dcmtk import echoscu
from tests.node_process import NodeProcess, free_port
from tests.postgres import fresh_postgres_schema

pytestmark = pytest.mark.postgres


class _Forward(socketserver.BaseRequestHandler):
    """Relay one client connection to the real PostgreSQL, both ways, until either side closes."""

    def handle(self) -> None:
        with socket.create_connection(("127.0.0.1", 5432)) as upstream:
            ends = [self.request, upstream]
            while True:
                ready, _, _ = select.select(ends, [], [], 30)
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.request else self.request).sendall(data)


@contextmanager
def postgres_appearing_on(port: int, after: float) -> Iterator[None]:
    """PostgreSQL reachable on `port` only `after` seconds from now: a database server still starting."""
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    servers: list[socketserver.ThreadingTCPServer] = []

    def open_later() -> None:
        time.sleep(after)
        server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Forward)
        server.daemon_threads = True
        servers.append(server)
        server.serve_forever(poll_interval=0.1)

    threading.Thread(target=open_later, daemon=True).start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_a_database_that_never_answers_fails_the_start_in_bounded_time_without_the_password() -> None:
    url = f"postgresql+psycopg2://dicomnode:s3cret@127.0.0.1:{free_port()}/dicomnode"
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as failure:
        wait_for_database(url, 1.5)
    assert 1.5 <= time.monotonic() - started < 10
    assert "unreachable after 1.5 s" in str(failure.value) and "s3cret" not in str(failure.value)


def test_a_stop_request_ends_the_wait_at_once() -> None:
    url = f"postgresql+psycopg2://dicomnode@127.0.0.1:{free_port()}/dicomnode"
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable, match="stopped while waiting"):
        wait_for_database(url, 60, stop_requested=lambda: time.monotonic() - started > 0.5)
    assert time.monotonic() - started < 5


def test_the_receiver_waits_for_its_database_then_serves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with fresh_postgres_schema() as real_url:
        port = free_port()
        url = real_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
        node = NodeProcess(tmp=tmp_path, settings={"database": {"url": url, "wait_seconds": 60}})
        with postgres_appearing_on(port, after=8.0):  # the node imports its modules in about 3 s
            node.start(timeout=60)
            try:
                assert echoscu(node.port).returncode == 0
                waits = [line for line in node.log().splitlines() if "waiting for the database" in line]
                assert waits and f"127.0.0.1:{port}" in waits[0], node.log()
                assert "Traceback" not in node.log()
            finally:
                node.stop()
