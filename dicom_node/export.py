"""The export sender: due outbox rows -> one association per destination batch.

Each destination has its own thread, so a destination that is down (and
spends `export.connection_timeout` on every attempt) never delays the others.
Each answer is recorded before the next object goes out: a crash re-sends at
most the objects that were in flight, once their lease has run out, by
whichever sender (of any process) claims them next.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node import metrics
from dicom_node.config import Config, Destination
from dicom_node.deidentify.copies import DeidentifiedCopies, DeidentifiedCopy
from dicom_node.deidentify.deidentifier import NotDeidentifiable
from dicom_node.deidentify.pseudonyms import KeyFileError
from dicom_node.logs import RepeatingFailure
from dicom_node.net.address import DicomAddress
from dicom_node.net.scu import PeerRefused, PeerUnavailable, Scu, StoreItem, read_item, tls_args
from dicom_node.outcomes import Outcome, StoreResult
from dicom_node.store.outbox import ClaimedExport, Outbox
from dicom_node.store.wakeups import Wakeups

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 2.0


class Exporter:
    def __init__(self, config: Config, sessions: sessionmaker[Session], data_dir: Path, owner: str, wakeups: Wakeups | None = None) -> None:
        self.config = config
        self.owner = owner
        self.outbox = Outbox(sessions, config.export, data_dir, wakeups)
        self.copies = DeidentifiedCopies(data_dir, sessions)
        self._senders: dict[str, tuple[Destination, threading.Event, threading.Thread]] = {}  # by destination name
        self._lock = threading.Lock()
        self._running = False

    def run(self, stopping: threading.Event) -> None:
        """Send until `stopping` is set; what is in flight then is sent again once its lease has run out."""
        with self._lock:
            self._running = True
        self.configuration_changed()
        configured = {dest.name for dest in self.config.destinations}
        log.info("export sender running for %s", ", ".join(sorted(configured)) or "no destinations")
        routed = {name for pipeline in self.config.pipelines.values() for name in pipeline.destinations}
        sources = {dest.name for dest in self.config.sources}  # a source only: nothing to send it unless a request asks
        for name in sorted(configured - routed - sources):
            log.warning(
                "destination %s is in no pipeline's destinations: no new results are queued for it "
                "(add it to [pipelines.<name>] destinations; `dicom-node exports resend JOB --to %s` sends a done job's)",
                name,
                name,
            )
        failures = RepeatingFailure(log, "export sender: checking for unconfigured destinations")
        while True:
            failures.run(lambda: self.outbox.fail_unconfigured({dest.name for dest in self.config.destinations}))
            if stopping.wait(max(self.config.export.poll_seconds, 5.0)):
                break
        with self._lock:
            self._running = False
            senders = list(self._senders.values())
        for _, done, _ in senders:
            done.set()
        # Give a C-STORE in progress a moment to be answered and recorded; whatever is still
        # in flight after that stays `sending` and is sent again once its lease has run out.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _, _, thread in senders:
            thread.join(timeout=max(deadline - time.monotonic(), 0))

    def configuration_changed(self) -> None:
        """One sender thread per configured destination: one for each new destination, and a fresh one for each
        changed destination (address, TLS, profile); those of removed or changed destinations stop after their
        batch in flight, whose rows are recorded as usual."""
        with self._lock:
            if not self._running:
                return
            current = {dest.name: dest for dest in self.config.destinations}
            for name, (dest, done, _) in list(self._senders.items()):
                if current.get(name) != dest:
                    done.set()
                    del self._senders[name]
            for name, dest in current.items():
                if name not in self._senders:
                    done = threading.Event()
                    thread = threading.Thread(target=self._serve, args=(dest, done), name=f"export-{name}", daemon=True)
                    self._senders[name] = (dest, done, thread)
                    thread.start()
        self.outbox.wakeups.wake("exports")  # the stopped senders see their event at once

    def _serve(self, dest: Destination, stopping: threading.Event) -> None:
        address = DicomAddress(dest.ae_title, dest.host, dest.port)
        try:
            socket.getaddrinfo(dest.host, dest.port)
        except socket.gaierror as exc:  # say it once, at start-up: every retry will fail the same way until it is fixed
            log.warning("destination %s: host %r cannot be resolved (%s): check its host; exports wait and retry", dest.name, dest.host, exc.strerror)
        try:
            scu = Scu(self.config.export, tls_args(dest))
        except (OSError, ValueError) as exc:
            log.error("destination %s: TLS set-up failed, nothing is sent there: %s", dest.name, exc)
            return
        failures = RepeatingFailure(log, f"destination {dest.name}: claiming or recording exports")  # the database, most likely
        export = self.config.export
        self.outbox.wakeups.serve(
            "exports", stopping, export.poll_seconds, export.lease_seconds,
            lambda: bool(failures.run(lambda: self.send_due(dest.name, address, scu))),
        )

    def send_due(self, name: str, address: DicomAddress, scu: Scu) -> bool:
        """Send one batch of due rows to one destination; True if every object got an answer."""
        batch = self.outbox.claim_due(name, self.owner)
        if not batch:
            return False
        ready: list[tuple[StoreItem, ClaimedExport]] = []
        copies: list[DeidentifiedCopy] = []
        for claimed in batch:
            prepared = self._item(claimed)
            if prepared is not None:
                ready.append((prepared[0], claimed))
                copies.extend(prepared[1:])
        if not ready:
            return True
        if copies and not self._record_pseudonyms(copies, ready):
            return False
        claims = iter(claimed for _, claimed in ready)  # store() answers each item, in order
        answered: list[StoreResult] = []

        def record(_item: StoreItem, result: StoreResult) -> None:
            self._record(next(claims), result)
            answered.append(result)

        try:
            scu.store(address, [item for item, _ in ready], on_result=record)
        except PeerRefused as exc:  # the peer said no to the association itself: retrying cannot help
            unanswered = StoreResult(Outcome.REFUSED, None, str(exc))
        except PeerUnavailable as exc:
            unanswered = StoreResult(Outcome.RETRY, None, str(exc))
        except Exception as exc:  # a bug must not leave the rows claimed until their lease runs out
            log.exception("destination %s: export batch failed unexpectedly", name)
            unanswered = StoreResult(Outcome.RETRY, None, f"unexpected error while sending: {type(exc).__name__}: {exc}")
        else:
            delivered = sum(result.outcome is Outcome.DELIVERED for result in answered)
            log.info("destination %s: %d of %d object(s) delivered", name, delivered, len(batch))
            return all(result.outcome is not Outcome.RETRY for result in answered)
        finally:
            for item, _ in ready:
                self.copies.remove(item.path)
        for claimed in claims:
            self._record(claimed, unanswered)
        return False

    def _item(self, claimed: ClaimedExport) -> tuple[StoreItem] | tuple[StoreItem, DeidentifiedCopy] | None:
        """The file to send for a claimed row (and its de-identified copy, for such a destination), or None after
        failing the row when the file cannot be what it should be or must not go there."""
        try:
            item = read_item(claimed.path)
        except ValueError as exc:
            self._record(claimed, StoreResult(Outcome.REFUSED, None, str(exc)))
            return None
        if item.sop_instance_uid != claimed.sop_instance_uid:
            reason = f"{claimed.path} holds SOP instance {item.sop_instance_uid}, not {claimed.sop_instance_uid}"
            self._record(claimed, StoreResult(Outcome.REFUSED, None, reason))
            return None
        dest = next((dest for dest in self.config.destinations if dest.name == claimed.destination), None)
        if dest is None or not dest.deidentification.enabled:
            return (item,)
        try:
            copy = self.copies.make(dest, claimed.path, claimed.id)
            return read_item(copy.path), copy
        except (NotDeidentifiable, KeyFileError) as exc:
            reason = f"not sent to de-identified destination {dest.name}: {exc}"
        except Exception as exc:  # a malformed object must fail its row, not the batch or the sender
            log.exception("export %d: de-identifying %s failed", claimed.id, claimed.path)
            reason = f"de-identification failed: {type(exc).__name__}: {exc}"
        self._record(claimed, StoreResult(Outcome.REFUSED, None, reason))
        return None

    def _record_pseudonyms(self, copies: list[DeidentifiedCopy], ready: list[tuple[StoreItem, ClaimedExport]]) -> bool:
        """Every pseudonym of the batch in the index, in one transaction, before anything goes out; if that fails,
        nothing is sent and the rows are retried."""
        try:
            self.copies.record(copies)
            return True
        except SQLAlchemyError as exc:
            for item, claimed in ready:
                self.copies.remove(item.path)
                self._record(claimed, StoreResult(Outcome.RETRY, None, f"recording the pseudonyms failed: {exc}"))
            return False

    def _record(self, claimed: ClaimedExport, result: StoreResult) -> None:
        metrics.count_export(claimed.destination, self.outbox.record(claimed, result))
