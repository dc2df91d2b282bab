"""The Storage SCP: accept C-ECHO and C-STORE, store durably, index, answer.

The C-STORE handler does only what must happen before the answer, through the
transport-independent receive path (`store/receive.py`: disk guard, data set
checks, identifiers, duplicate policy, durable write, index row; its docstring
lists the statuses). Everything else (jobs, pipeline, export) happens
elsewhere, so a slow pipeline never slows a sending PACS.

Associations are rejected (A-ASSOCIATE-RJ, permanent, service user) with
reason 3 for an unknown calling AE (or host, or a called AE the source may not
use), reason 7 for an unknown called AE (both lists change at run time:
`configuration_changed`); more than `dicom.max_associations` are rejected as transient, local limit
exceeded. Connections reach these checks only through the front door
(`frontdoor.py`: a sane A-ASSOCIATE-RQ within the handshake timeout), on the
plain port, the TLS port, or both.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association

from dicom_node import metrics
from dicom_node.config import DicomSettings
from dicom_node.net import contexts
from dicom_node.net.contexts import VERIFICATION, SopClassFilter, contexts_for, sop_class_name
from dicom_node.net.frontdoor import DoorRules, FrontDoor, open_front_door
from dicom_node.net.qrscp import QR_SOP_CLASSES, QueryRetrieveService
from dicom_node.net.requests import configure_pynetdicom, refuse_incomplete_store
from dicom_node.net.sockets import disable_nagle
from dicom_node.net.slots import SlotAE
from dicom_node.net.tls import server_context, watch_certificate
from dicom_node.peer_memory import PeerMemory
from dicom_node.store.checks import OUT_OF_RESOURCES
from dicom_node.store.files import part10_header
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from dicom_node.store.receive import Batch, Receiver

log = logging.getLogger(__name__)

def _status(code: int, comment: str = "") -> Dataset | int:
    """The handler's answer: the bare code when there is nothing to say (pynetdicom takes an int as the status,
    and a pydicom Dataset per image costs more than the rest of the answer), else a status data set with the comment."""
    if not comment:
        return code
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment
    return ds


@dataclass(frozen=True)
class CalledAes:
    """Our called AEs' pipelines and SOP class filters, replaced whole when the configuration changes (an
    association reads one snapshot)."""

    pipelines: dict[str, list[str]]
    accepted: dict[str, SopClassFilter]

    @classmethod
    def of(cls, settings: DicomSettings) -> CalledAes:
        return cls(
            {called.ae_title: called.pipelines for called in settings.called_aes},
            {called.ae_title: SopClassFilter.of(called.sop_classes, called.refused_sop_classes) for called in settings.called_aes},
        )


class StorageSCP:
    """A pynetdicom server wired to the durable store and the job queue."""

    def __init__(
        self,
        settings: DicomSettings,
        data_dir: Path,
        indexer: Indexer,
        queue: JobQueue,
        on_association_end: Callable[[], None] | None = None,
        other_work: Callable[[], int] | None = None,
        peer_memory: PeerMemory | None = None,
        query_retrieve: QueryRetrieveService | None = None,
    ) -> None:
        """`query_retrieve`: the C-FIND, C-MOVE and C-GET handlers (None: storage only). `other_work`: how many pipeline jobs this process runs now; with several receiving processes, one that is
        busy leaves new associations to the others (`FrontDoor._listener_ready`). `peer_memory`: the process's memory
        for peers, shared with its STOW-RS (default: this process's share of `dicom.peer_memory_mb`)."""
        self.settings = settings
        self.peer_memory = peer_memory or PeerMemory.share(settings.peer_memory_mb, settings.receive_processes)
        self._other_work = other_work
        self._on_association_end = on_association_end  # after the end is recorded: the scheduler may queue its series
        self.receiver = Receiver(settings, data_dir, indexer, queue)
        self._called = CalledAes.of(settings)
        self._batches: dict[int, Batch] = {}
        self._lock = threading.Lock()
        self._doors: list[FrontDoor] = []
        self.query_retrieve = query_retrieve
        if not settings.allowed_sources:
            log.warning("dicom.allowed_sources is empty: any calling AE may send to this node")

    def configuration_changed(self) -> None:
        """The run-time configuration changed (`live_config.py`): the next association is judged by the new one."""
        self._called = CalledAes.of(self.settings)

    def _make_ae(self) -> SlotAE:
        ae = SlotAE(ae_title=self.settings.called_aes[0].ae_title)
        ae.maximum_associations = self.settings.max_associations
        ae.maximum_pdu_size = self.settings.max_pdu
        ae.acse_timeout = self.settings.acse_timeout
        ae.dimse_timeout = self.settings.dimse_timeout
        ae.network_timeout = self.settings.network_timeout
        ae.require_called_aet = False  # checked per configured called AE in _on_requested
        ae.add_supported_context(VERIFICATION)  # the storage contexts are chosen per association (_on_requested)
        return ae

    def start(self, shared: dict[int, socket.socket] | None = None) -> tuple[str, int]:
        """Listen in background threads (plain port, TLS port); return the first bound address.

        `shared`: listening sockets by configured port, made by another process (`receivers.py`), to accept on
        instead of binding."""
        configure_pynetdicom()
        contexts.prepare()
        handlers = [
            (evt.EVT_CONN_OPEN, disable_nagle),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_DIMSE_RECV, refuse_incomplete_store),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_CONN_CLOSE, self._on_closed),
            *(self.query_retrieve.handlers() if self.query_retrieve else []),
        ]
        settings = self.settings
        listeners = [(settings.port, None), (settings.tls_port, self._tls_context() if settings.tls_port else None)]
        ae = self._make_ae()
        rules = DoorRules(
            settings.handshake_timeout,
            settings.max_pending_connections,
            settings.max_message_mb * 1024 * 1024,
            self.peer_memory,
            shared_listener=settings.receive_processes > 1,
        )
        try:
            for port, context in listeners:
                if port:
                    listener = None if shared is None else shared[port]
                    self._doors.append(open_front_door(ae, (settings.host, port), handlers, rules, context, listener, self.store, self._other_work))
        except Exception:  # the TLS port is taken: do not keep the plain one open
            self.stop()
            raise
        for door in self._doors:
            log.info(
                "storage SCP listening on %s:%d%s as %s",
                *door.server_address[:2],
                " (TLS)" if door.ssl_context else "",
                ", ".join(f"{title} -> {' + '.join(pipelines)}" for title, pipelines in self._called.pipelines.items()),
            )
        host, port = self._doors[0].server_address[:2]
        return host, port

    def listening_sockets(self) -> dict[int, socket.socket]:
        """The listening sockets by configured port (plain, TLS), for other receiving processes to share."""
        ports = [port for port in (self.settings.port, self.settings.tls_port) if port]
        return {port: door.socket for port, door in zip(ports, self._doors)}

    def _tls_context(self) -> ssl.SSLContext:
        settings = self.settings
        assert settings.tls_cert_file and settings.tls_key_file  # checked by the configuration
        watch_certificate("dicom", settings.tls_cert_file)
        try:
            return server_context(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise OSError(f"dicom.tls_cert_file, tls_key_file or tls_ca_file cannot be used: {exc}") from exc

    def stop(self) -> None:
        for door in self._doors:
            door.shutdown()
        self._doors = []

    # Association events ---------------------------------------------------
    def _source_allowed(self, calling: str, host: str, called: str) -> bool:
        sources = self.settings.allowed_sources
        return not sources or any(source.admits(calling, host, called) for source in sources)

    def _on_requested(self, event: evt.Event) -> None:
        assoc: Association = event.assoc
        request = assoc.requestor.primitive
        calling = str(request.calling_ae_title).strip()
        called = str(request.called_ae_title).strip()
        host, port = assoc.requestor.address, assoc.requestor.port
        reason = None
        aes = self._called
        if not self._source_allowed(calling, host, called):
            reason, diagnostic = f"calling AE {calling!r} from {host} is not an allowed source (of {called!r})", 0x03
        elif called not in aes.pipelines:
            reason, diagnostic = f"called AE {called!r} is not one of ours ({', '.join(aes.pipelines)})", 0x07
        if reason is None:
            assoc.acceptor.ae_title = called
            proposed = [str(cx.abstract_syntax) for cx in request.presentation_context_definition_list]
            assoc.acceptor.supported_contexts = contexts_for(proposed, aes.accepted[called], self._query_retrieve_classes(proposed, calling, host, called))
            return
        log.warning("association from %s@%s:%d to %s rejected: %s", calling, host, port, called, reason)
        assoc.acse.send_reject(0x01, 0x01, diagnostic)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _query_retrieve_classes(self, proposed: list[str], calling: str, host: str, called: str) -> frozenset[str]:
        """The Q/R classes this peer may use: all, if it is a source allowed to query (else none, and the log says why)."""
        if not QR_SOP_CLASSES.intersection(proposed):
            return frozenset()
        if self.query_retrieve is not None and self.query_retrieve.may_query(calling, host, called):
            return QR_SOP_CLASSES
        why = "this node runs no Query/Retrieve SCP" if self.query_retrieve is None else "it is no source with query_retrieve = true (dicom.allowed_sources)"
        log.warning("%s@%s proposed Query/Retrieve, refused: %s", calling, host, why)
        return frozenset()

    def _on_accepted(self, event: evt.Event) -> None:
        assoc: Association = event.assoc
        calling = str(assoc.requestor.ae_title).strip()
        called = str(assoc.acceptor.ae_title).strip()
        host, port = assoc.requestor.address, assoc.requestor.port
        # Its called AE removed since _on_requested (a moment ago): the association was accepted, its series is processed.
        aes = self._called
        batch = self.receiver.open(calling, called, host, port, aes.pipelines.get(called) or next(iter(aes.pipelines.values())))
        with self._lock:
            self._batches[id(assoc)] = batch
        metrics.count_association("accepted")
        log.info("association %s accepted: %s", batch.uuid[:8], batch.label, extra={"association": batch.uuid})
        refused = {str(cx.abstract_syntax): cx.result for cx in assoc.rejected_contexts}
        if refused:
            why = {0x03: f"not accepted by {called}", 0x04: "in no transfer syntax the node stores"}
            log.warning(
                "association %s: refused %s",
                batch.uuid[:8],
                ", ".join(f"{sop_class_name(uid)} ({why.get(result, f'result {result}')})" for uid, result in sorted(refused.items())),
                extra={"association": batch.uuid},
            )

    def _on_rejected(self, _event: evt.Event) -> None:
        """Counts every rejection: ours in _on_requested and pynetdicom's own (association limit)."""
        metrics.count_association("rejected")

    def _end(self, event: evt.Event, how: str) -> None:
        with self._lock:
            batch = self._batches.pop(id(event.assoc), None)
        if batch is None:
            return  # rejected, or already ended (an abort is followed by a connection close)
        self.receiver.close(batch, how)
        if self._on_association_end is not None and (batch.instances or batch.resent):  # a re-send may complete a held series
            self._on_association_end()

    def _on_released(self, event: evt.Event) -> None:
        self._end(event, "released")

    def _on_aborted(self, event: evt.Event) -> None:
        self._end(event, "aborted")

    def _on_closed(self, event: evt.Event) -> None:
        # The peer may close right after our A-RELEASE-RP, before EVT_RELEASED fires (reactor.EventAssociation sets
        # is_released first); otherwise the connection dropped without release or abort.
        self._end(event, "released" if event.assoc.is_released else "aborted")

    # C-STORE --------------------------------------------------------------
    def _on_store(self, event: evt.Event) -> Dataset | int:
        """EVT_C_STORE: the requests the fast path (`fastpath.py`) leaves to pynetdicom."""
        request = event.request
        sop_class, sop_instance = request.AffectedSOPClassUID, request.AffectedSOPInstanceUID  # each read once: per image
        if request.MoveOriginatorMessageID is not None:  # a C-MOVE's sub-operation (never on the fast path)
            self._note_move(event.assoc, str(request.MoveOriginatorApplicationEntityTitle or "").strip(), int(request.MoveOriginatorMessageID))
        return _status(*self.store(event.assoc, sop_class, sop_instance, str(event.context.transfer_syntax), request.DataSet.getbuffer()))

    def _note_move(self, assoc: Association, originator_ae: str, message_id: int) -> None:
        with self._lock:
            batch = self._batches.get(id(assoc))
        if batch is not None and batch.retrieve is None:
            self.receiver.note_retrieve(batch, originator_ae, message_id)

    def store(self, assoc: Association, sop_class: str, sop_instance: str, syntax: str, raw: memoryview) -> tuple[int, str]:
        """Store one C-STORE's data set on `assoc`; the status and its Error Comment ('' for none; LO, at most 64)."""
        with self._lock:
            batch = self._batches.get(id(assoc))
        if batch is None:  # cannot happen for an accepted association; refuse rather than store untracked data
            return OUT_OF_RESOURCES, "association not registered"
        outcome = self.receiver.store(batch, part10_header(sop_class, sop_instance, syntax), raw, syntax, (sop_class, sop_instance))
        return outcome.status, outcome.comment[:64]
