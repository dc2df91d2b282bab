"""The HTTP server inside the node process: uvicorn in a thread beside the SCP and the workers.

Uvicorn installs signal handlers only in the main thread, so running it in a
thread leaves SIGTERM/SIGINT to the node, which stops the server with the rest.
"""

from __future__ import annotations

import logging
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
                reason = f": {self._error}" if self._error else ""
                raise OSError(f"HTTP server could not listen on {self._server.config.host}:{self._server.config.port}{reason}")
            if time.monotonic() > deadline:
                raise OSError("HTTP server did not start in time")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        log.info("HTTP API and viewer on %s://%s:%d/", self.scheme, host, port)
        return host, port

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
