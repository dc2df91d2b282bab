"""The node process: receive, store, queue, process, export, each in its own threads over one database."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from dicom_node.config import Config
from dicom_node.net.scp import StorageSCP
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.files import remove_stale_temporaries
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from dicom_node.web.api import create_app
from dicom_node.web.context import ReadinessHook, WebContext
from dicom_node.web.server import HttpServer

log = logging.getLogger(__name__)


class Node:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.data_dir = Path(config.node.data_dir).resolve()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.engine = None
        self.scp: StorageSCP | None = None
        self.http: HttpServer | None = None
        # Checks /ready runs besides database, disk and destinations (e.g. "triton"); fill before start().
        self.readiness_hooks: dict[str, ReadinessHook] = {}

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = self.config.database_url
        upgrade(url)
        self.engine = make_engine(url)
        sessions = make_sessionmaker(self.engine)
        self.queue = JobQueue(sessions, self.config.node.name)
        self.queue.recover()
        removed = remove_stale_temporaries(self.data_dir)
        if removed:
            log.info("removed %d temporary file(s) of unacknowledged instances", removed)
        self.scp = StorageSCP(self.config.dicom, self.data_dir, Indexer(sessions), self.queue)
        self.scp.start()
        self._spawn("scheduler", self._schedule)
        if self.config.http.port:
            context = WebContext(self.config, sessions, self.data_dir, self.readiness_hooks)
            self.http = HttpServer(create_app(context), self.config.http.host, self.config.http.port)
            self.http.start()
        log.info("node %s ready (pid %d, data in %s)", self.config.node.name, os.getpid(), self.data_dir)

    def _spawn(self, name: str, target) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _schedule(self) -> None:
        interval = min(self.config.jobs.poll_seconds, max(self.config.jobs.settle_seconds / 2, 0.1))
        while not self.stopping.wait(interval):
            try:
                self.queue.queue_settled(self.config.jobs.settle_seconds)
            except Exception:
                log.exception("scheduler: could not queue settled series; retrying")

    def stop(self) -> None:
        self.stopping.set()
        if self.http is not None:
            self.http.stop()
        if self.scp is not None:
            self.scp.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.engine is not None:
            self.engine.dispose()
        log.info("node stopped")
