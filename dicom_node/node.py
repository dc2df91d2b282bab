"""The node process: receive, store, queue, process, export, each in its own threads over one database.

One process may do everything (`dicom-node serve`, the default; with
`dicom.receive_processes` > 1 it starts more processes that receive on its
ports, `receivers.py`), only receive
(`serve --workers 0 --no-export`: SCP, scheduler, HTTP) or only work
(`dicom-node worker`: pipeline workers and export senders). Any number of each
can share one PostgreSQL database and one data directory: work is claimed
under leases (`store/leases.py`), never "recovered" at start-up.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom

from dicom_node import metrics
from dicom_node.config import Config
from dicom_node.export import Exporter
from dicom_node.inference.base import ContractMismatch, InferenceUnavailable
from dicom_node.inference.factory import build_models
from dicom_node.pipelines.registry import pipeline as registered, stored_dicom_files
from dicom_node.inference.triton import TritonModel
from dicom_node.live_config import LiveConfig, config_store
from dicom_node.net.qrscp import QueryRetrieveService
from dicom_node.net.scp import StorageSCP
from dicom_node.net.tls import watch_certificate
from dicom_node.peer_memory import PeerMemory
from dicom_node.receivers import ReceivingProcesses
from dicom_node.request_runner import RequestRunner
from dicom_node.store.config_store import ConfigStore
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade, wait_for_database
from dicom_node.store.files import make_private, remove_stale_temporaries
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue, schedule
from dicom_node.store.leases import LeaseKeeper, process_owner
from dicom_node.store.outbox import Outbox
from dicom_node.store.result_index import index_missing_results
from dicom_node.store.retention import Retention
from dicom_node.store.shared_storage import check_data_dir
from dicom_node.store.wakeups import CHANNELS, Wakeups
from dicom_node.web.api import create_app
from dicom_node.web.context import ReadinessHook, WebContext
from dicom_node.web.server import HttpServer
from dicom_node.worker import Worker

log = logging.getLogger(__name__)


class StartupError(OSError):
    """The node cannot start for a reason the operator fixes (the message says which and how)."""


def check_writable(data_dir: Path) -> None:
    """Fail with the folder's name, not an SQLite error: the data dir must be creatable and writable."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise StartupError(
            f"data folder {data_dir} is not writable ({exc.strerror}): fix its owner or permissions, or choose another with --data-dir"
        ) from None


@dataclass(frozen=True)
class ModelCheck:
    """One model's readiness check, which also sets its `dicom_node_model_ready` gauge (start-up and each /ready)."""

    name: str
    check_ready: Callable[[], None]
    where: str

    def run(self) -> None:
        try:
            self.check_ready()
        except Exception:
            metrics.set_model_ready(self.name, False)
            raise
        metrics.set_model_ready(self.name, True)

    def report(self) -> None:
        """The start-up check: one log line saying whether jobs can use the model."""
        try:
            self.run()
            log.info("%s is ready", self.where)
        except InferenceUnavailable as exc:
            log.warning("%s is unavailable (jobs will wait for it): %s", self.where, exc)
        except ContractMismatch as exc:
            log.error("%s does not match its configured contract (jobs will fail): %s", self.where, exc)


class Node:
    def __init__(self, config: Config, receive: bool = True) -> None:
        self.config = config
        self.receive = receive
        self.owner = process_owner(config.node.name)
        self.data_dir = Path(config.node.data_dir).resolve()
        self.stopping = threading.Event()
        # Set by the SCP when an association that sent instances ends: the scheduler queues its series at once
        # (jobs and exports wake their threads through `wakeups`).
        self._released = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: list[Worker] = []
        self.engine = None
        self.scp: StorageSCP | None = None
        self.receivers: ReceivingProcesses | None = None
        self.http: HttpServer | None = None
        self.wakeups: Wakeups | None = None
        self.config_store: ConfigStore | None = None
        # Checks /ready runs besides database, disk and destinations (e.g. "triton"); fill before start().
        self.readiness_hooks: dict[str, ReadinessHook] = {}
        # This process's share of the memory held for peers: its associations and its STOW-RS requests draw on it.
        self.peer_memory = PeerMemory.share(config.dicom.peer_memory_mb, config.dicom.receive_processes)
        self._started = False

    def start(self, stop_requested: Callable[[], bool] = lambda: False) -> None:
        """Start every role of this process; `stop_requested` ends a wait for the database early (a SIGTERM then)."""
        # The node checks the source UIDs it relies on itself and reports a series' problems once (a warning in
        # the job's result and one log line); pydicom's own per-value warnings would repeat them for every header
        # read and every object written (hundreds of lines per series).
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
        pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
        check_writable(self.data_dir)
        make_private(self.data_dir)
        url = self.config.database_url
        wait_for_database(url, self.config.database.wait_seconds, stop_requested)
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
        self.config_store = config_store(self.config, sessions, self.wakeups)
        self.config_store.seed(self.config, who="configuration file")
        live = LiveConfig(self.config, self.config_store)
        live.refresh()  # before anything reads the called AEs, sources or destinations
        self._check_models()
        indexed = index_missing_results(sessions, self.data_dir, stored_dicom_files)
        if indexed:
            log.info("indexed the results of %d job(s) done before the Query/Retrieve SCP, so that it finds them", indexed)
        if self.receive:
            self.queue.close_interrupted_associations(with_receivers=True)
            indexer = Indexer(sessions, self.config.job_sop_classes())
            self.scp = StorageSCP(
                self.config.dicom, self.data_dir, indexer, self.queue, on_association_end=self._released.set,
                other_work=lambda: sum(worker.busy for worker in self._workers), peer_memory=self.peer_memory,
                query_retrieve=QueryRetrieveService(self.config.dicom, sessions, self.data_dir, lambda: self.config.destinations),
            )
            live.on_change(self.scp.configuration_changed)
            try:
                self.scp.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                where = f"{self.config.dicom.host}:{self.config.dicom.port}"
                raise StartupError(f"DICOM port {where} is already in use (another dicom-node or PACS?): choose another with --port") from None
            if self.config.dicom.receive_processes > 1:
                self.receivers = ReceivingProcesses(self.config, self.scp.listening_sockets(), self.config.dicom.receive_processes)
                self.receivers.start()
            self._spawn("scheduler", self._schedule)
            if self.config.retention.enabled:  # here: the receiver's indexer must forget what retention deletes
                retention = Retention(sessions, self.config.retention, self.data_dir, indexer.forget)
                log.info("retention is on: %s", self.config.retention.limits())
                self._spawn("retention", lambda: self._retain(retention))
        outbox = Outbox(sessions, self.config.export, self.data_dir, self.wakeups)
        for number in range(1, jobs.workers + 1):
            worker = Worker(self.config, self.queue, outbox, self.data_dir, f"{self.owner}/worker-{number}")
            self._workers.append(worker)
            self._spawn(f"worker-{number}", lambda worker=worker: worker.run(self.stopping))
        if self.config.retrieve.enabled:
            runner = RequestRunner(self.config, sessions, self.data_dir, self.owner, self.queue, outbox)
            self._spawn("requests", lambda: runner.run(self.stopping))
        if self.config.export.enabled:
            exporter = Exporter(self.config, sessions, self.data_dir, self.owner, self.wakeups)
            live.on_change(exporter.configuration_changed)
            self._spawn("exporter", lambda: exporter.run(self.stopping))
        self._spawn("configuration", lambda: live.watch(self.stopping))
        if self.config.http.port:
            context = WebContext(self.config, sessions, self.data_dir, self.readiness_hooks, self.peer_memory, self.config_store)
            http = self.config.http
            if http.tls_cert_file:
                watch_certificate("http", http.tls_cert_file)
            self.http = HttpServer(create_app(context), http.host, http.port, http.tls_cert_file, http.tls_key_file)
            self.http.start()
        self._started = True
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
        """Say at start-up whether each model can serve; never wait for it (jobs wait, receiving does not).

        The models are checked at once, each in its own thread: with Triton down, start-up waits for one check's
        retries (3.5 s by default), not for one per model.
        """
        checks: dict[str, ModelCheck] = {}
        for pipeline, settings in self.config.pipelines.items():
            for model in build_models(self.config.models, registered(pipeline), settings.processing).values():
                # Not `model.contract` for a Triton model: reading it contacts the server and
                # raises what check_ready() raises, outside the handling below (the node would not start).
                name = model.settings.model_name if isinstance(model, TritonModel) else model.contract.name
                check = checks.setdefault(name, ModelCheck(name, model.check_ready, f"model {name} of pipeline {pipeline}"))
                self.readiness_hooks.setdefault(f"model:{name}", check.run)
        with ThreadPoolExecutor(max_workers=max(1, len(checks)), thread_name_prefix="model-check") as pool:
            list(pool.map(ModelCheck.report, checks.values()))

    def _spawn(self, name: str, target) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _schedule(self) -> None:
        schedule(self.queue, self.config.jobs, self._released, self.stopping, lambda: self.config.dicom.called_aes)

    def _retain(self, retention: Retention) -> None:
        while True:
            try:
                retention.sweep()
            except Exception:
                log.exception("retention: sweep failed; retrying")
            if self.stopping.wait(self.config.retention.interval_seconds):
                return

    def stop(self) -> None:
        self.stopping.set()
        self._released.set()  # the scheduler sees `stopping` at once
        if self.wakeups is not None:
            for channel in CHANNELS:
                self.wakeups.wake(channel)
        if self.http is not None:
            self.http.stop()
        if self.receivers is not None:
            self.receivers.stop()
        if self.scp is not None:
            self.scp.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.engine is not None:
            self.engine.dispose()
        if self._started:  # a failed start-up says why in one line; "stopped" would only confuse
            log.info("node stopped")
