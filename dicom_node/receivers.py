"""More than one receiving process behind the node's DICOM ports (`dicom.receive_processes`).

One Python process receives on one core at a time: pynetdicom decodes PDUs
and the store path parses and indexes under the interpreter lock, so four
concurrent associations share one core. With `receive_processes = N`, the node
process (which binds the ports, as always) starts N-1 processes that accept
on the *same listening sockets* (inherited descriptors) and run only what
receiving needs: the front door and Storage SCP, the settle-window scheduler,
the lease keeper of their open associations, and the watch on the run-time
configuration (`live_config.py`: a called AE or source added over REST or the
CLI is in force in every receiving process within a second). Whichever
process calls accept() first takes a connection, so idle processes take new
associations from busy ones.

The guarantees are those of several receivers on one database
(docs/scale-out.md), which they are: every instance is acknowledged only
after its file is durably written (fsync) and its row committed; a SOP Instance
UID sent to two processes at once is caught by the index's unique key and
handled by the duplicate policy; patient/study/series rows are created by
whoever comes first (the others retry and find them); a series is queued once
no open association of any process is sending it, with one job per series
(compare-and-set). Each process is named `<node.name>#<n>`: it marks its
associations, renews their leases, and, restarted after a crash, marks the
ones it had open as interrupted; the node marks those of all its receiving
processes at its own start.

A receiving process reads its configuration (JSON) from a pipe that the node
keeps open: end of file means the node is gone (even SIGKILLed alone), and the
process stops. The node restarts a receiving process that dies.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pydicom

from dicom_node.config import Config
from dicom_node.logs import setup_logging
from dicom_node.stop_signals import StopSignals

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before a receiving process that died is started again
STOP_SECONDS = 10.0  # then it is killed


def receiver_name(node_name: str, number: int) -> str:
    """`<node name>#<n>`, within the 64 characters of `association.node`."""
    suffix = f"#{number}"
    return node_name[: 64 - len(suffix)] + suffix


class ReceivingProcesses:
    """The node's other receiving processes: started on its listening sockets, restarted when they die, stopped with it."""

    def __init__(self, config: Config, sockets: dict[int, socket.socket], count: int) -> None:
        self._config = config
        self._sockets = sockets
        self._numbers = range(2, count + 1)  # the node itself is the first
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        for number in self._numbers:
            self._spawn(number)
            threading.Thread(target=self._watch, args=(number,), name=f"receiver-{number}", daemon=True).start()

    def _spawn(self, number: int) -> None:
        settings: dict[str, Any] = json.loads(self._config.model_dump_json())
        settings["node"]["name"] = receiver_name(self._config.node.name, number)
        spec = {"config": settings, "sockets": {str(port): sock.fileno() for port, sock in self._sockets.items()}}
        process = subprocess.Popen(
            [sys.executable, "-m", "dicom_node.receivers"], stdin=subprocess.PIPE, pass_fds=tuple(spec["sockets"].values())
        )
        stdin = process.stdin
        assert stdin is not None
        stdin.write(json.dumps(spec).encode() + b"\n")
        stdin.flush()  # and kept open: its end tells the process that the node is gone
        with self._lock:
            self._processes[number] = process
        log.info("receiving process %d started (pid %d)", number, process.pid)

    def _watch(self, number: int) -> None:
        while True:
            with self._lock:
                process = self._processes[number]
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error("receiving process %d (pid %d) exited with %d: starting it again in %g s", number, process.pid, code, RESTART_DELAY)
            _close(process.stdin)
            if self._stopping.wait(RESTART_DELAY):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._spawn(number)

    def stop(self) -> None:
        """End of file on each pipe (the processes stop their SCP and exit); kill those still running after STOP_SECONDS."""
        with self._lock:
            self._stopping.set()
            processes = list(self._processes.values())
        for process in processes:
            _close(process.stdin)
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("receiving process pid %d did not stop within %g s: killed", process.pid, STOP_SECONDS)
                process.kill()
                process.wait()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:
            pass


class Receiving:
    """What a receiving process runs: Storage SCP on the shared sockets, scheduler, association leases."""

    def __init__(self, config: Config, sockets: dict[int, socket.socket]) -> None:
        self.config = config
        self.sockets = sockets
        self.stopping = threading.Event()
        self._released = threading.Event()  # an association that sent instances ended: the scheduler looks at once
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        from dicom_node.live_config import LiveConfig, config_store
        from dicom_node.net.qrscp import QueryRetrieveService
        from dicom_node.net.scp import StorageSCP
        from dicom_node.store.db import make_engine, make_sessionmaker
        from dicom_node.store.files import make_private
        from dicom_node.store.ingest import Indexer
        from dicom_node.store.jobs import JobQueue, schedule
        from dicom_node.store.leases import LeaseKeeper, process_owner
        from dicom_node.store.wakeups import Wakeups

        config = self.config
        # As in the node: the data set checks judge what matters, pydicom's per-value warnings would repeat them
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
        pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
        data_dir = Path(config.node.data_dir).resolve()
        make_private(data_dir)
        self.engine = make_engine(config.database_url)  # the node has created or upgraded the schema
        sessions = make_sessionmaker(self.engine)
        name, jobs = config.node.name, config.jobs
        self.wakeups = Wakeups(self.engine)
        queue = JobQueue(sessions, name, jobs.lease_seconds, jobs.max_attempts, self.wakeups)
        queue.close_interrupted_associations()  # restarted after a crash: what it had open was cut
        leases = LeaseKeeper(sessions, name, process_owner(name), jobs.lease_seconds, config.export.lease_seconds)
        live = LiveConfig(config, config_store(config, sessions, self.wakeups))
        live.refresh()  # a change between the node's start and this process's
        self.indexer = Indexer(sessions, config.job_sop_classes())
        query_retrieve = QueryRetrieveService(config.dicom, sessions, data_dir, lambda: config.destinations)
        self.scp = StorageSCP(config.dicom, data_dir, self.indexer, queue, on_association_end=self._released.set, query_retrieve=query_retrieve)
        live.on_change(self.scp.configuration_changed)
        self.scp.start(shared=self.sockets)
        self._spawn("wakeups", lambda: self.wakeups.listen(self.stopping))
        self._spawn("configuration", lambda: live.watch(self.stopping))
        self._spawn("leases", lambda: leases.run(self.stopping))
        self._spawn("scheduler", lambda: schedule(queue, jobs, self._released, self.stopping, lambda: config.dicom.called_aes))
        log.info("receiving process ready (pid %d, name %s)", os.getpid(), name)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        self._released.set()
        self.wakeups.wake("config")
        self.scp.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        self.indexer.close()
        self.engine.dispose()


def main() -> None:
    """A receiving process, started by the node (`ReceivingProcesses`) with its settings on stdin."""
    spec = json.loads(sys.stdin.buffer.readline())
    config = Config.model_validate(spec["config"])
    setup_logging(config.node.log_level, config.node.log_json)
    sockets = {int(port): socket.socket(fileno=fd) for port, fd in spec["sockets"].items()}
    receiving = Receiving(config, sockets)
    stop_signals = StopSignals()

    def _watch_node() -> None:
        # Unbuffered: a daemon thread blocked in a buffered read holds its lock, which interpreter shutdown needs.
        while os.read(sys.stdin.fileno(), 4096):  # returns b"" at end of file: the node closed the pipe or is gone
            pass
        receiving.stopping.set()

    threading.Thread(target=_watch_node, name="node-watch", daemon=True).start()
    try:
        receiving.start()
    except Exception:
        log.exception("receiving process %s could not start", config.node.name)
        sys.exit(1)
    stop_signals.wait(receiving.stopping)
    receiving.stop()
    log.info("receiving process %s stopped", config.node.name)


if __name__ == "__main__":
    main()
