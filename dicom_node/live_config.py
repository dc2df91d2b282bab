"""Every process applies the database's run-time configuration to its own `Config`, within a second of a change.

A change over REST or the CLI bumps a one-row revision (`store/config_store.py`). Each process (the node, its
receiving processes, every worker) runs `LiveConfig.watch`: on PostgreSQL the change's NOTIFY wakes it at once
(with a look every few seconds as fallback); on SQLite a change made in this process wakes it at once and one
made by another process (the CLI, a receiving process's node) is seen by reading the revision four times a
second, one indexed row. It then replaces the called AEs, sources, destinations and routes of its `Config` in
place and tells the parts that keep something derived from them (the SCP's rules per called AE, the export
sender's thread per destination).

An association keeps what it was accepted with: removing its called AE or its source while it sends refuses
the next association, never the instances of this one, which are stored and processed as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Config
from dicom_node.logs import RepeatingFailure
from dicom_node.store.config_store import ConfigStore
from dicom_node.store.wakeups import Wakeups
from dicom_node.web.audit import change_recorder

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # without notifications from other processes (SQLite, or PostgreSQL's LISTEN connection lost)
FALLBACK_SECONDS = 5.0  # with them: the look that catches a notification lost in a database restart


def config_store(config: Config, sessions: sessionmaker[Session], wakeups: Wakeups | None = None) -> ConfigStore:
    """The configuration's entities in the database, each change audited in the node's audit log."""
    return ConfigStore(sessions, wakeups, change_recorder(Path(config.node.data_dir).resolve(), config.http.access_log))


class LiveConfig:
    def __init__(self, config: Config, store: ConfigStore) -> None:
        self.config = config
        self.store = store
        self.revision = -1
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` (in the watching thread) after each change has been applied."""
        self._listeners.append(listener)

    def refresh(self) -> bool:
        """Apply the database's configuration if it changed since the last look; True if it did."""
        with self._lock:
            revision, entities = self.store.load()
            if revision == self.revision:
                return False
            entities.apply_to(self.config)
            first, self.revision = self.revision < 0, revision
        log.log(
            logging.DEBUG if first else logging.INFO,
            "configuration revision %d in force: called AEs %s; sources %s; destinations %s",
            revision,
            ", ".join(called.ae_title for called in self.config.dicom.called_aes),
            ", ".join(source.name for source in self.config.dicom.allowed_sources) or "any",
            ", ".join(dest.name for dest in self.config.destinations) or "none",
        )
        for listener in self._listeners:
            listener()
        return True

    def watch(self, stopping: threading.Event) -> None:
        """Look for changes until `stopping` is set (see the module's docstring)."""
        wakeups = self.store.wakeups
        failures = RepeatingFailure(log, "applying the run-time configuration")
        while not stopping.is_set():
            seen = wakeups.seen("config")
            failures.run(lambda: self.store.revision() != self.revision and self.refresh())
            wakeups.wait("config", FALLBACK_SECONDS if wakeups.listening else POLL_SECONDS, seen)
