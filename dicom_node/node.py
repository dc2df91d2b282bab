"""The node process: receive, store, queue, process, export, each in its own threads over one database.

One process may do everything (`dicom-node serve`, the default), only receive
(`serve --workers 0 --no-export`: SCP, scheduler, HTTP) or only work
(`dicom-node worker`: pipeline workers and export senders). Any number of each
can share one PostgreSQL database and one data directory: work is claimed
under leases (`store/leases.py`), never "recovered" at start-up.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from dicom_node.config import Config
from dicom_node.export import Exporter
from dicom_node.inference.base import ContractMismatch, InferenceUnavailable
from dicom_node.inference.factory import build_models
from dicom_node.inference.triton import TritonModel
from dicom_node.logs import RepeatingFailure
from dicom_node.net.scp import StorageSCP
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.files import make_private, remove_stale_temporaries
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from dicom_node.store.leases import LeaseKeeper, process_owner
from dicom_node.store.outbox import Outbox
from dicom_node.store.shared_storage import check_data_dir
from dicom_node.store.wakeups import Wakeups
from dicom_node.web.api import create_app
from dicom_node.web.context import ReadinessHook, WebContext
from dicom_node.web.server import HttpServer
from dicom_node.worker import Worker

log = logging.getLogger(__name__)


class Node:
    def __init__(self, config: Config, receive: bool = True) -> None:
        self.config = config
        self.receive = receive
        self.owner = process_owner(config.node.name)
        self.data_dir = Path(config.node.data_dir).resolve()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.engine = None
        self.scp: StorageSCP | None = None
        self.http: HttpServer | None = None
        self.wakeups: Wakeups | None = None
        # Checks /ready runs besides database, disk and destinations (e.g. "triton"); fill before start().
        self.readiness_hooks: dict[str, ReadinessHook] = {}

    def start(self) -> None:
        make_private(self.data_dir)
        url = self.config.database_url
        upgrade(url)
        self.engine = make_engine(url)
        sessions = make_sessionmaker(self.engine)
        check_data_dir(sessions, self.data_dir)
        self.wakeups = Wakeups(self.engine)
        jobs = self.config.jobs
        self.queue = JobQueue(sessions, self.config.node.name, jobs.lease_seconds, jobs.max_attempts, self.wakeups)
        removed = remove_stale_temporaries(self.data_dir)
        if removed:
            log.info("removed %d temporary file(s) of unacknowledged instances", removed)
        leases = LeaseKeeper(sessions, self.config.node.name, self.owner, jobs.lease_seconds, self.config.export.lease_seconds)
        self._spawn("leases", lambda: leases.run(self.stopping))
        self._spawn("wakeups", lambda: self.wakeups.listen(self.stopping))
        self._check_models()
        if self.receive:
            self.queue.close_interrupted_associations()
            self.scp = StorageSCP(self.config.dicom, self.data_dir, Indexer(sessions), self.queue)
            self.scp.start()
            self._spawn("scheduler", self._schedule)
        outbox = Outbox(sessions, self.config.export, self.data_dir, self.wakeups)
        for number in range(1, jobs.workers + 1):
            worker = Worker(self.config, self.queue, outbox, self.data_dir, f"{self.owner}/worker-{number}")
            self._spawn(f"worker-{number}", lambda worker=worker: worker.run(self.stopping))
        if self.config.export.enabled:
            exporter = Exporter(self.config, sessions, self.data_dir, self.owner, self.wakeups)
            self._spawn("exporter", lambda: exporter.run(self.stopping))
        if self.config.http.port:
            context = WebContext(self.config, sessions, self.data_dir, self.readiness_hooks)
            http = self.config.http
            self.http = HttpServer(create_app(context), http.host, http.port, http.tls_cert_file, http.tls_key_file)
            self.http.start()
        roles = ["receiver"] if self.receive else []
        roles += [f"{jobs.workers} worker(s)"] if jobs.workers else []
        roles += ["export sender"] if self.config.export.enabled else []
        log.info(
            "node %s ready as %s (pid %d, owner %s, data in %s)",
            self.config.node.name,
            ", ".join(roles) or "nothing",
            os.getpid(),
            self.owner,
            self.data_dir,
        )

    def _check_models(self) -> None:
        """Say at start-up whether each model can serve; never wait for it (jobs wait, receiving does not)."""
        for pipeline, settings in self.config.pipelines.items():
            for model in build_models(self.config.models, settings.processing):
                # Not `model.contract` for a Triton model: reading it contacts the server and
                # raises what check_ready() raises, outside the handling below (the node would not start).
                name = model.settings.model_name if isinstance(model, TritonModel) else model.contract.name
                where = f"model {name} of pipeline {pipeline}"
                self.readiness_hooks.setdefault(f"model:{name}", model.check_ready)
                try:
                    model.check_ready()
                    log.info("%s is ready", where)
                except InferenceUnavailable as exc:
                    log.warning("%s is unavailable (jobs will wait for it): %s", where, exc)
                except ContractMismatch as exc:
                    log.error("%s does not match its configured contract (jobs will fail): %s", where, exc)

    def _spawn(self, name: str, target) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _schedule(self) -> None:
        interval = min(self.config.jobs.poll_seconds, max(self.config.jobs.settle_seconds / 2, 0.1))
        failures = RepeatingFailure(log, "scheduler: queueing settled series")
        while not self.stopping.wait(interval):
            failures.run(lambda: self.queue.queue_settled(self.config.jobs.settle_seconds))

    def stop(self) -> None:
        self.stopping.set()
        if self.wakeups is not None:
            for channel in ("jobs", "exports"):
                self.wakeups.wake(channel)
        if self.http is not None:
            self.http.stop()
        if self.scp is not None:
            self.scp.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.engine is not None:
            self.engine.dispose()
        log.info("node stopped")
