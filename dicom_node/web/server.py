"""The HTTP server inside the node process: uvicorn in a thread beside the SCP and the workers.

Uvicorn installs signal handlers only in the main thread, so running it in a
thread leaves SIGTERM/SIGINT to the node, which stops the server with the rest.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int, tls_cert_file: str | None = None, tls_key_file: str | None = None) -> None:
        """HTTPS when a certificate and its key are given (uvicorn's TLS; the access log is the node's own, web/audit.py)."""
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off", server_header=False,  # no "server: uvicorn"
            ssl_certfile=tls_cert_file, ssl_keyfile=tls_key_file,
        )
        self.scheme = "https" if tls_cert_file else "http"
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._error: Exception | None = None

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit:
            pass  # uvicorn exits when it cannot listen (it logged why); start() sees the thread end and raises
        except Exception as exc:  # e.g. an unreadable certificate or key: start() raises it with the reason
            self._error = exc

    def start(self, timeout: float = 10.0) -> tuple[str, int]:
        """Serve in the background; return the bound address once it accepts connections, or raise OSError."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(self._error_text())
            if time.monotonic() > deadline:
                raise OSError("HTTP server did not start in time")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        log.info("HTTP API and viewer on %s://%s:%d/", self.scheme, host, port)
        return host, port

    def _error_text(self) -> str:
        """Why uvicorn could not listen, blaming the setting that is wrong (it only logs the reason itself)."""
        host, port = self._server.config.host, self._server.config.port
        if self._error is not None:  # e.g. an unreadable certificate or key
            return f"HTTP port {host}:{port} is not available ({self._error}): choose another with --http-port or http.port"
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return f"HTTP host {host!r} does not resolve ({exc.strerror}): give an address of this machine with --http-host or http.host"
        family, kind, proto, _, address = addresses[0]
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"HTTP port {host}:{port} is already in use: choose another with --http-port or http.port (0: no HTTP server)"
            return f"HTTP address {host}:{port} cannot be used ({exc.strerror}): check --http-host/--http-port (http.host, http.port)"
        return f"HTTP server on {host}:{port} did not start (see the log above)"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
