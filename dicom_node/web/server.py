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
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit:
            pass  # uvicorn exits when it cannot listen (it logged why); start() sees the thread end and raises

    def start(self, timeout: float = 10.0) -> tuple[str, int]:
        """Serve in the background; return the bound address once it accepts connections, or raise OSError."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                where = f"{self._server.config.host}:{self._server.config.port}"
                raise OSError(f"HTTP port {where} is not available (in use?): choose another with --http-port")
            if time.monotonic() > deadline:
                raise OSError("HTTP server did not start in time")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        log.info("HTTP API and viewer on http://%s:%d/", host, port)
        return host, port

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
