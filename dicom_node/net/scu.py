"""C-STORE and C-ECHO as a service user: how results (and `dicom-node send`) reach a peer.

Files are sent as stored: pynetdicom's chunked send streams the encoded data
set from the file without decoding it, in the file's own transfer syntax, so
what the PACS receives is byte for byte what the output writer produced. One
association carries a whole batch and proposes exactly the (SOP class,
transfer syntax) pairs of its files.

What each answer means for the outbox is decided in `outcomes.py`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread, read_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import Verification

from dicom_node.config import Destination, ExportSettings
from dicom_node.net.address import DicomAddress
from dicom_node.net.sockets import disable_nagle
from dicom_node.outcomes import Outcome, StoreResult, classify_status
from dicom_node.net.tls import TlsArgs, client_tls

# Send a file path's encoded data set as stored instead of decoding and re-encoding it.
_config.STORE_SEND_CHUNKED_DATASET = True

MAX_CONTEXTS = 128  # presentation contexts per association (odd IDs 1..255)


@dataclass(frozen=True)
class StoreItem:
    """A file to send and the presentation context it needs.

    `streamable` is False for files whose file meta lacks the SOP UIDs (some
    modalities write such files): those are parsed and re-encoded in their own
    transfer syntax (compressed pixel data is copied, not decoded) instead of
    being streamed as stored.
    """

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    streamable: bool = True

    @property
    def context(self) -> tuple[str, str]:
        return self.sop_class_uid, self.transfer_syntax_uid


class NoAssociation(Exception):
    """The association could not be established; the message says how it failed."""


class PeerUnavailable(NoAssociation):
    """Nothing answered, the connection failed or the peer was busy: it may work later (transient)."""


class PeerRefused(NoAssociation):
    """The peer answered and said no (a permanent rejection, or every presentation context refused):
    sending the same objects again cannot help until someone changes the peer's or our configuration."""


def read_item(path: Path) -> StoreItem:
    """The file's SOP class, instance and transfer syntax; ValueError if it is not a DICOM file."""
    try:
        meta = read_file_meta_info(path)
        syntax = str(meta.TransferSyntaxUID)
        if "MediaStorageSOPClassUID" in meta and "MediaStorageSOPInstanceUID" in meta:
            return StoreItem(path, str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID), syntax)
        header = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return StoreItem(path, str(header.SOPClassUID), str(header.SOPInstanceUID), syntax, streamable=False)
    except (OSError, AttributeError, InvalidDicomError) as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc})") from exc


def tls_args(dest: Destination) -> TlsArgs | None:
    """pynetdicom's `tls_args` for a destination: a client SSLContext verifying the peer, and its host name."""
    if not dest.tls:
        return None
    return client_tls(dest.host, dest.tls_ca_file, dest.tls_cert_file, dest.tls_key_file)


def associate(
    ae: AE,
    address: DicomAddress,
    contexts: list[PresentationContext],
    tls: TlsArgs | None,
    ext_neg: list[Any] | None = None,
    handlers: list[tuple[Any, Any]] | None = None,
) -> Association:
    """An established association with `address`, or PeerUnavailable/PeerRefused saying how it failed.

    `ext_neg` (e.g. SCP/SCU role selection for C-GET) and `handlers` (e.g. C-GET's C-STORE) go to pynetdicom as given."""
    connected: list[bool] = []
    # The A-ASSOCIATE-RJ as it arrived: a peer that closes the connection right after rejecting can make
    # pynetdicom report an abort instead (it checks the socket before reading the answer it already has).
    rejections: list[A_ASSOCIATE] = []

    def on_pdu(event: evt.Event) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu.to_primitive())

    events = [(evt.EVT_CONN_OPEN, disable_nagle), (evt.EVT_CONN_OPEN, lambda _event: connected.append(True)), (evt.EVT_PDU_RECV, on_pdu)]
    events += handlers or []
    try:
        assoc = ae.associate(
            address.host, address.port, contexts=contexts, ae_title=address.ae_title, evt_handlers=events, tls_args=tls, ext_neg=ext_neg
        )
    except socket.gaierror as exc:  # a typo in a host name is an operator's error, not a traceback
        raise PeerUnavailable(f"cannot resolve host {address.host!r} of {address} ({exc.strerror}): check the host name") from None
    if assoc.is_established:
        assoc.unbind(evt.EVT_PDU_RECV, on_pdu)  # not called for every P-DATA of the transfer
        return assoc
    if not connected:
        causes = f"nothing listening, unreachable, or no answer within {ae.connection_timeout:g} s"
        if tls is not None:  # pynetdicom reports a failed handshake like a failed connection
            raise PeerUnavailable(f"cannot connect to {address} over TLS: {causes}, or the TLS handshake failed (certificates?)")
        raise PeerUnavailable(f"cannot connect to {address}: {causes}")
    if assoc.is_rejected or rejections:
        response = rejections[0] if rejections else assoc.acceptor.primitive
        reason = f"{address} rejected the association ({_rejection(response)})"
        raise PeerRefused(reason) if response is not None and response.result == 0x01 else PeerUnavailable(reason)
    if assoc.rejected_contexts and not assoc.accepted_contexts:  # pynetdicom aborts an association without one
        refused = "; ".join(_context_refusal(cx.abstract_syntax, cx.transfer_syntax, cx.status) for cx in assoc.rejected_contexts)
        raise PeerRefused(f"{address} refused every presentation context proposed: {refused}")
    raise PeerUnavailable(f"{address} aborted the association request or did not answer it within {ae.acse_timeout:g} s")


def _rejection(response: A_ASSOCIATE | None) -> str:
    """The peer's A-ASSOCIATE-RJ in words: permanent or transient, who rejected, and why (PS3.8 9.3.4)."""
    if response is None or response.result is None:
        return "no reason given"
    return f"{response.result_str.lower()}, by the {response.source_str.lower()}: {response.reason_str.lower()}"


def _context_refusal(sop_class_uid: str, transfer_syntaxes: Sequence[str], status: str) -> str:
    syntaxes = ", ".join(UID(syntax).name for syntax in transfer_syntaxes)
    return f"{UID(sop_class_uid).name} ({sop_class_uid}) in {syntaxes}: {status.lower()}"


def _refused_context(item: StoreItem, assoc: Association) -> StoreResult:
    status = next((cx.status for cx in assoc.rejected_contexts if cx.abstract_syntax == item.sop_class_uid), "refused")
    refusal = _context_refusal(item.sop_class_uid, [item.transfer_syntax_uid], status)
    return StoreResult(Outcome.REFUSED, None, f"the peer refused {refusal} during association negotiation")


def _send_one(assoc: Association, item: StoreItem, address: DicomAddress) -> StoreResult:
    try:
        response: Dataset = assoc.send_c_store(item.path if item.streamable else dcmread(item.path))
    except (OSError, AttributeError, ValueError) as exc:  # file vanished or lacks its file meta
        return StoreResult(Outcome.REFUSED, None, f"cannot send {item.path}: {exc}")
    if "Status" not in response:
        assoc.abort()
        return StoreResult(Outcome.RETRY, None, f"no response from {address} (association aborted or timed out)")
    return classify_status(int(response.Status), str(response.get("ErrorComment", "")).strip())


@dataclass(frozen=True)
class EchoResult:
    status: int
    seconds: float


class Scu:
    """Our AE as a service user, with the timeouts of `export.*`; the exporter keeps one per destination.

    A peer that accepts the TCP connection but never answers holds an
    association request (and, pynetdicom's connection thread not being a
    daemon, a stopping node) for at most `export.acse_timeout`.
    """

    def __init__(self, settings: ExportSettings, tls: TlsArgs | None = None) -> None:
        self.tls = tls
        self._ae = AE(ae_title=settings.calling_ae_title)
        self._ae.connection_timeout = settings.connection_timeout
        self._ae.acse_timeout = settings.acse_timeout
        self._ae.dimse_timeout = settings.dimse_timeout
        self._ae.network_timeout = settings.network_timeout

    def store(
        self, address: DicomAddress, items: Sequence[StoreItem], on_result: Callable[[StoreItem, StoreResult], None] | None = None
    ) -> list[StoreResult]:
        """Send `items` over one association; one result per item, in order.

        `on_result` is called as each answer arrives, so a caller can record it
        before the next object goes out. Raises PeerUnavailable or PeerRefused
        (and sends nothing) when no association could be established. If the association
        ends midway, the unanswered items are `retry`.
        """
        pairs = list(dict.fromkeys(item.context for item in items))
        if len(pairs) > MAX_CONTEXTS:
            raise ValueError(f"{len(pairs)} SOP class/transfer syntax pairs: at most {MAX_CONTEXTS} fit one association")
        assoc = associate(self._ae, address, [build_context(sop_class, syntax) for sop_class, syntax in pairs], self.tls)
        accepted = {(ctx.abstract_syntax, ctx.transfer_syntax[0]) for ctx in assoc.accepted_contexts}
        results: list[StoreResult] = []
        try:
            for item in items:
                if not assoc.is_established:
                    result = StoreResult(Outcome.RETRY, None, f"the association with {address} ended before this object was sent")
                elif item.context not in accepted:
                    result = _refused_context(item, assoc)
                else:
                    result = _send_one(assoc, item, address)
                results.append(result)
                if on_result is not None:
                    on_result(item, result)
        finally:
            if assoc.is_established:
                assoc.release()
        return results

    def echo(self, address: DicomAddress) -> EchoResult:
        """C-ECHO the peer; raise PeerUnavailable if no association, or no answer to the echo."""
        started = time.perf_counter()
        assoc = associate(self._ae, address, [build_context(Verification)], self.tls)
        try:
            response = assoc.send_c_echo()
        except ValueError as exc:  # Verification not accepted
            raise PeerUnavailable(f"{address} does not accept C-ECHO: {exc}") from exc
        finally:
            if assoc.is_established:
                assoc.release()
        if "Status" not in response:
            raise PeerUnavailable(f"{address} did not answer the C-ECHO")
        return EchoResult(int(response.Status), time.perf_counter() - started)
