"""The Storage SCP: accept C-ECHO and C-STORE, store durably, index, answer.

The C-STORE handler does only what must happen before the answer: check the
disk guard, read the identifying attributes (the pixel data is never decoded),
write the file durably and commit its row. Everything else (jobs, pipeline,
export) happens elsewhere, so a slow pipeline never slows a sending PACS.

C-STORE statuses (PS3.4 Annex B; ErrorComment carries the reason):
  0x0000 success (also for a duplicate under the 'keep-first' policy)
  0xA700 out of resources: free disk below `dicom.min_free_disk_mb`, the write/commit failed, or a deflated
         data set inflates beyond `dicom.max_inflated_mb`
  0xA900 data set does not match the SOP class/instance of the request, its Pixel Data is shorter than its
         image attributes say, or an identifier is longer than the index keeps whole
  0xC210 cannot understand: the data set cannot be decoded in the negotiated transfer syntax up to Pixel Data
         (store/checks.py says where)
  0xC211 cannot understand: SOP Instance UID, Study Instance UID or Series Instance UID missing, or the
         request's command lacks its Affected SOP Class/Instance UID (net/requests.py)
  0xC221 duplicate SOP Instance UID refused (policy 'reject')
Associations are rejected (A-ASSOCIATE-RJ, permanent, service user) with
reason 3 for an unknown calling AE (or host), reason 7 for an unknown called
AE; more than `dicom.max_associations` are rejected as transient, local limit
exceeded. Connections reach these checks only through the front door
(`frontdoor.py`: a sane A-ASSOCIATE-RQ within the handshake timeout), on the
plain port, the TLS port, or both.
"""

from __future__ import annotations

import io
import logging
import shutil
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association

from dicom_node import metrics
from dicom_node.config import DicomSettings
from dicom_node.net.contexts import storage_contexts
from dicom_node.net.frontdoor import DoorRules, FrontDoor, open_front_door
from dicom_node.net.requests import configure_pynetdicom, refuse_incomplete_store
from dicom_node.net.sockets import disable_nagle
from dicom_node.net.tls import server_context
from dicom_node.store.checks import MISSING_UIDS, NOT_MATCHING, OUT_OF_RESOURCES, UNDECODABLE, Refused, checked_dataset, same_uid
from dicom_node.store.files import encode_file_header, instance_relpath, write_durably
from dicom_node.store.ingest import DuplicateInstance, Indexer, InstanceMeta, decode_data_set, same_data_set
from dicom_node.store.jobs import JobQueue

log = logging.getLogger(__name__)

SUCCESS = 0x0000
DUPLICATE_REFUSED = 0xC221


def _status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


@dataclass
class _AssociationState:
    """Per-association counters, written to the index when the association ends."""

    id: int
    uuid: str
    label: str
    pipeline: str
    instances: int = 0
    nbytes: int = 0
    failures: int = 0
    series: dict[str, int] = field(default_factory=dict)


class StorageSCP:
    """A pynetdicom server wired to the durable store and the job queue."""

    def __init__(
        self,
        settings: DicomSettings,
        data_dir: Path,
        indexer: Indexer,
        queue: JobQueue,
        on_association_end: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_association_end = on_association_end  # after the end is recorded: the scheduler may queue its series
        self.data_dir = data_dir
        self.indexer = indexer
        self.queue = queue
        self._pipelines = {called.ae_title: called.pipeline for called in settings.called_aes}
        self._states: dict[int, _AssociationState] = {}
        self._lock = threading.Lock()
        self._doors: list[FrontDoor] = []
        if not settings.allowed_sources:
            log.warning("dicom.allowed_sources is empty: any calling AE may send to this node")

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.settings.called_aes[0].ae_title)
        ae.maximum_associations = self.settings.max_associations
        ae.maximum_pdu_size = self.settings.max_pdu
        ae.acse_timeout = self.settings.acse_timeout
        ae.dimse_timeout = self.settings.dimse_timeout
        ae.network_timeout = self.settings.network_timeout
        ae.require_called_aet = False  # checked per configured called AE in _on_requested
        for context in storage_contexts():
            ae.add_supported_context(context.abstract_syntax, context.transfer_syntax)
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification (C-ECHO)
        return ae

    def start(self) -> tuple[str, int]:
        """Listen in background threads (plain port, TLS port); return the first bound address."""
        configure_pynetdicom()
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
        ]
        settings = self.settings
        listeners = [(settings.port, None), (settings.tls_port, self._tls_context() if settings.tls_port else None)]
        ae = self._make_ae()
        rules = DoorRules(settings.handshake_timeout, settings.max_pending_connections)
        try:
            for port, context in listeners:
                if port:
                    self._doors.append(open_front_door(ae, (settings.host, port), handlers, rules, context))
        except Exception:  # the TLS port is taken: do not keep the plain one open
            self.stop()
            raise
        for door in self._doors:
            log.info(
                "storage SCP listening on %s:%d%s as %s",
                *door.server_address[:2],
                " (TLS)" if door.ssl_context else "",
                ", ".join(f"{title} -> {pipeline}" for title, pipeline in self._pipelines.items()),
            )
        host, port = self._doors[0].server_address[:2]
        return host, port

    def _tls_context(self) -> ssl.SSLContext:
        settings = self.settings
        assert settings.tls_cert_file and settings.tls_key_file  # checked by the configuration
        try:
            return server_context(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise OSError(f"dicom.tls_cert_file, tls_key_file or tls_ca_file cannot be used: {exc}") from exc

    def stop(self) -> None:
        for door in self._doors:
            door.shutdown()
        self._doors = []

    # Association events ---------------------------------------------------
    def _source_allowed(self, calling: str, host: str) -> bool:
        if not self.settings.allowed_sources:
            return True
        return any(src.ae_title == calling and src.host in (None, host) for src in self.settings.allowed_sources)

    def _on_requested(self, event: evt.Event) -> None:
        assoc: Association = event.assoc
        request = assoc.requestor.primitive
        calling = str(request.calling_ae_title).strip()
        called = str(request.called_ae_title).strip()
        host, port = assoc.requestor.address, assoc.requestor.port
        reason = None
        if not self._source_allowed(calling, host):
            reason, diagnostic = f"calling AE {calling!r} from {host} is not an allowed source", 0x03
        elif called not in self._pipelines:
            reason, diagnostic = f"called AE {called!r} is not one of ours ({', '.join(self._pipelines)})", 0x07
        if reason is None:
            assoc.acceptor.ae_title = called
            return
        log.warning("association from %s@%s:%d to %s rejected: %s", calling, host, port, called, reason)
        assoc.acse.send_reject(0x01, 0x01, diagnostic)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _on_accepted(self, event: evt.Event) -> None:
        assoc: Association = event.assoc
        calling = str(assoc.requestor.ae_title).strip()
        called = str(assoc.acceptor.ae_title).strip()
        host, port = assoc.requestor.address, assoc.requestor.port
        row_id, row_uuid = self.queue.open_association(calling, called, host, port)
        state = _AssociationState(row_id, row_uuid, f"{calling}@{host}:{port} -> {called}", self._pipelines.get(called, "covid19_ct"))
        with self._lock:
            self._states[id(assoc)] = state
        metrics.count_association("accepted")
        log.info("association %s accepted: %s", row_uuid[:8], state.label, extra={"association": row_uuid})

    def _on_rejected(self, _event: evt.Event) -> None:
        """Counts every rejection: ours in _on_requested and pynetdicom's own (association limit)."""
        metrics.count_association("rejected")

    def _end(self, event: evt.Event, how: str) -> None:
        with self._lock:
            state = self._states.pop(id(event.assoc), None)
        if state is None:
            return  # rejected, or already ended (an abort is followed by a connection close)
        self.queue.close_association(state.id, how, state.instances, state.nbytes, state.failures)
        if self._on_association_end is not None and state.instances:
            self._on_association_end()
        series = ", ".join(f"{uid} ({n})" for uid, n in state.series.items()) or "none"
        log.info(
            "association %s %s: %d instance(s), %.1f MB, %d failure(s); series: %s",
            state.uuid[:8],
            how,
            state.instances,
            state.nbytes / 1e6,
            state.failures,
            series,
            extra={"association": state.uuid},
        )

    def _on_released(self, event: evt.Event) -> None:
        self._end(event, "released")

    def _on_aborted(self, event: evt.Event) -> None:
        self._end(event, "aborted")

    def _on_closed(self, event: evt.Event) -> None:
        self._end(event, "aborted")  # connection dropped without release or abort

    # C-STORE --------------------------------------------------------------
    def _disk_is_low(self) -> bool:
        free_mb = shutil.disk_usage(self.data_dir).free / 2**20
        return free_mb < self.settings.min_free_disk_mb

    def _on_store(self, event: evt.Event) -> Dataset | int:
        with self._lock:
            state = self._states.get(id(event.assoc))
        if state is None:  # cannot happen for an accepted association; refuse rather than store untracked data
            return _status(OUT_OF_RESOURCES, "association not registered")
        status = self._store(event, state)
        if status.Status != SUCCESS:
            state.failures += 1
            metrics.count_refused(status.Status)
        return status

    def _store(self, event: evt.Event, state: _AssociationState) -> Dataset:
        request = event.request
        tag = f"association {state.uuid[:8]}: instance {request.AffectedSOPInstanceUID}"
        fields: dict[str, str] = {"association": state.uuid}
        if self._disk_is_low():
            log.error("%s refused: free disk below %d MB", tag, self.settings.min_free_disk_mb, extra=fields)
            return _status(OUT_OF_RESOURCES, "out of disk space")
        raw = request.DataSet.getbuffer()
        syntax = str(event.context.transfer_syntax)
        try:
            meta = InstanceMeta.from_encoded(checked_dataset(raw, syntax, self.settings.max_inflated_mb * 2**20), syntax)
        except Refused as refused:
            log.error("%s refused: %s", tag, refused, extra=fields)
            return _status(refused.problem.status, refused.problem.comment)
        except Exception as exc:  # any decoding failure of peer data
            log.error("%s refused: data set cannot be decoded: %s", tag, exc, extra=fields)
            return _status(UNDECODABLE, "data set cannot be decoded")
        if not (meta.sop_class_uid or meta.sop_instance_uid or meta.study_instance_uid):
            log.error("%s refused: no DICOM identifiers found in the data set", tag)
            return _status(UNDECODABLE, "data set cannot be decoded")
        if not (meta.sop_instance_uid and meta.study_instance_uid and meta.series_instance_uid):
            log.error("%s refused: SOP, study or series instance UID missing", tag, extra=fields)
            return _status(MISSING_UIDS, "SOP/Study/Series Instance UID missing")
        fields.update(study=meta.study_instance_uid, series=meta.series_instance_uid)
        if not same_uid(meta.sop_instance_uid, request.AffectedSOPInstanceUID) or meta.sop_class_uid != request.AffectedSOPClassUID:
            log.error("%s refused: data set says %s of class %s", tag, meta.sop_instance_uid, meta.sop_class_uid, extra=fields)
            return _status(NOT_MATCHING, "data set does not match the request's SOP class/instance")

        # The path is a function of the UIDs, so only an instance whose file exists can be a re-send: the index
        # is asked only then (a file without a row is one a crash left unacknowledged: it is simply replaced).
        relpath = instance_relpath(meta.study_instance_uid, meta.series_instance_uid, meta.sop_instance_uid)
        previous = self.indexer.indexed_path(meta.sop_instance_uid) if (self.data_dir / relpath).exists() else None
        if previous is not None and (refusal := self._duplicate(tag, fields, previous, raw, syntax)) is not None:
            return refusal
        try:
            size = write_durably(
                self.data_dir / relpath, encode_file_header(event.file_meta), raw, sync_directory=self.settings.sync_directories
            )
            try:
                self.indexer.record(meta, relpath, size, state.id, state.pipeline, replace=previous is not None)
            except DuplicateInstance as duplicate:  # the same UID came before in another study or series
                previous = duplicate.path
                if (refusal := self._duplicate(tag, fields, previous, raw, syntax)) is not None:
                    (self.data_dir / relpath).unlink(missing_ok=True)
                    return refusal
                self.indexer.record(meta, relpath, size, state.id, state.pipeline, replace=True)
        except Exception as exc:  # disk or database failure: the sender must retry, nothing was acknowledged
            log.exception("%s failed to store: %s", tag, exc, extra=fields)
            return _status(OUT_OF_RESOURCES, f"storage failed: {type(exc).__name__}")
        if previous is not None and previous != relpath:
            (self.data_dir / previous).unlink(missing_ok=True)
        state.instances += 1
        state.nbytes += size
        metrics.count_instance(size)
        state.series[meta.series_instance_uid] = state.series.get(meta.series_instance_uid, 0) + 1
        log.debug("%s stored (series %s, %d bytes)", tag, meta.series_instance_uid, size, extra=fields)
        return _status(SUCCESS)

    def _duplicate(self, tag: str, fields: dict[str, str], stored: Path, raw: memoryview, syntax: str) -> Dataset | None:
        """The answer to a re-sent SOP Instance UID under the configured policy; None: store the new copy."""
        policy = self.settings.duplicate_policy
        if policy == "reject":
            log.warning("%s refused: duplicate (policy reject)", tag, extra=fields)
            return _status(DUPLICATE_REFUSED, "duplicate SOP Instance UID refused")
        if policy == "keep-first" or self._same_content(stored, raw, syntax):
            log.info("%s is a duplicate: kept the stored copy (%s)", tag, "policy keep-first" if policy == "keep-first" else "same content", extra=fields)
            return _status(SUCCESS)
        return None

    def _same_content(self, stored: Path, raw: memoryview, syntax: str) -> bool:
        """True if the stored instance holds the received data set: a re-send of the same instance, whoever sent it.

        Equal bytes are the common case and cost one read. Otherwise (another transfer syntax or encoding) both
        are decoded and compared attribute by attribute, pixel data by value; that is paid only for a SOP Instance
        UID that is already stored, never on the ordinary receive path.
        """
        path = self.data_dir / stored
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        if data.endswith(raw) and len(data) - len(raw) < 4096:
            return True
        try:
            return same_data_set(dcmread(io.BytesIO(data)), decode_data_set(raw, syntax))
        except Exception as exc:  # a copy we cannot decode is not shown to be the same: store it (policy overwrite)
            log.debug("%s: cannot compare with the received copy: %s", stored, exc)
            return False
