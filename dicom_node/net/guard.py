"""pynetdicom's association, with every received PDU judged by its header before its body is read.

pynetdicom's DUL reads a PDU as `recv(6)` then `recv(length)`, whatever the
length says, into one growing buffer: a peer claiming 4 GiB makes it buffer
everything it sends. Two subclasses change that without copying pynetdicom's
state machine:

- `GuardedSocket` (an `AssociationSocket`) first serves the A-ASSOCIATE-RQ the
  front door has already read, lets the DUL peek at the next header, reads a
  PDU body straight into one buffer of its final size, and gives up on a PDU
  that takes longer than the network timeout (one byte a minute keeps no
  association open forever);
- `GuardedDUL` (a `DULServiceProvider`, through `reactor.EventDUL`) checks each header (`pdu.check_header`)
  and, for an unknown type or a length beyond what we accept, sends an A-ABORT
  and closes the socket at once; the association then ends as aborted. Once we
  have said our last word (A-ASSOCIATE-RJ, A-ABORT, A-RELEASE-RP, state Sta13),
  it closes the socket instead of reading what else the peer sends;
- its state machine turns an exception on peer data (a P-DATA-TF that is no
  DIMSE message kills pynetdicom's DUL thread and leaves the association
  open, never reported as ended) into the same abort;
- the DUL and the association thread wait for events instead of polling
  every millisecond (`reactor.py`), and C-STORE responses are encoded
  directly (`responses.py`);
- once the association is established, each P-DATA-TF is read whole, after
  its header passed; its fragments count towards the message they belong to,
  and a command or data set longer than `max_message_bytes` (`dicom.max_message_mb`)
  aborts the association, as pynetdicom would hold all of it in memory, and so does one
  for which the process's memory for peers (`peer_memory.py`) has no room left, or a
  fragment on a presentation context that was not accepted; when the association ends,
  what it held of an unfinished message is dropped and its reservation given back; the PDU is
  then offered to the C-STORE fast path (`fastpath.py`), which serves plain
  C-STORE requests itself and puts back in front of the socket, for pynetdicom
  to read, whatever else it does not take.

They rely on pynetdicom internals (`_read_pdu_data`, `state_machine`,
`StateMachine.do_action`, the `Sta13` state name, `Association.dul`,
`RequestHandler._create_association`); tests/hostile/test_pynetdicom_hooks.py
fails when those change.
"""

from __future__ import annotations

import logging
import socket
import time
from contextlib import suppress
from typing import cast

from pynetdicom.association import Association
from pynetdicom.fsm import StateMachine
from pynetdicom.transport import AssociationSocket

from dicom_node import metrics
from dicom_node.memory import release_free_memory
from dicom_node.net.fastpath import StoreAssembler, StoreFunction
from dicom_node.net.pdu import (
    COMMAND_FRAGMENT,
    HEADER_LENGTH,
    INVALID_PARAMETER_VALUE,
    LAST_FRAGMENT,
    P_DATA_TF,
    PDV_ITEM_HEAD,
    abort_pdu,
    check_header,
    parse_header,
)
from dicom_node.net.reactor import LOGGER as DUL_LOGGER
from dicom_node.net.reactor import EventDUL, event_driven
from dicom_node.net.responses import fast_store_responses
from dicom_node.peer_memory import STEP, PeerMemory

log = logging.getLogger(__name__)
TRIM_AFTER = 16 * STEP  # an association that held more than this returns the freed heap to the system when it ends


class GuardedSocket(AssociationSocket):
    """An acceptor's socket that starts with the already-read A-ASSOCIATE-RQ and reads each PDU within a deadline."""

    def __init__(self, assoc: Association, client_socket: socket.socket, request_pdu: bytes) -> None:
        self._unread = bytearray(request_pdu)
        super().__init__(assoc, client_socket=client_socket)
        self._pdu_seconds = assoc.network_timeout
        client_socket.settimeout(assoc.network_timeout)  # no recv() or send() blocks forever

    @property
    def ready(self) -> bool:
        return bool(self._unread) or super().ready

    def peek(self, nr_bytes: int) -> bytes:
        """The next `nr_bytes` (fewer if the peer closed), left to be read again.

        Taken from the bytes already read when they are there: the fast path may have put back a long message
        (`fastpath.py`), and putting a header back in front of it would move all of it, for every PDU."""
        if len(self._unread) >= nr_bytes:
            return bytes(self._unread[:nr_bytes])
        data = self.recv(nr_bytes)
        self._unread[:0] = data
        return bytes(data)

    def recv(self, nr_bytes: int) -> bytearray:
        """`nr_bytes`, or fewer if the peer closed; TimeoutError if they do not all arrive within the network timeout.

        The caller has checked `nr_bytes` against the PDU limits, so the buffer is allocated at its final size
        and filled in place, in as few system calls as the kernel allows.
        """
        buffer = bytearray(nr_bytes)
        got = min(len(self._unread), nr_bytes)
        if got:
            buffer[:got] = self._unread[:got]
            del self._unread[:got]
        if got < nr_bytes:
            sock = cast(socket.socket, self.socket)
            deadline = None if self._pdu_seconds is None else time.monotonic() + self._pdu_seconds
            with memoryview(buffer) as view:
                while got < nr_bytes:
                    count = sock.recv_into(view[got:], nr_bytes - got)
                    if not count:
                        break
                    got += count
                    if deadline is not None and got < nr_bytes and time.monotonic() > deadline:
                        raise TimeoutError(f"{got} of {nr_bytes} bytes of a PDU arrived within {self._pdu_seconds:g} s")
            del buffer[got:]
        return buffer


def _abort(dul: EventDUL, reason: str, answer: bytes) -> None:
    """Send `answer` (an A-ABORT) if the socket takes it, and close: the state machine gets "transport closed"
    (Evt17, valid in every state but idle) and ends the association as aborted."""
    log.warning("%s: association aborted, socket closed: %s", _peer(dul.assoc), reason)
    metrics.count_connection_refused("pdu")
    sock = cast(GuardedSocket, dul.socket)
    if sock.socket is not None:
        with suppress(OSError):
            sock.socket.sendall(answer)
    sock.close()


class _GuardedStateMachine(StateMachine):
    def do_action(self, event: str) -> None:
        try:
            super().do_action(event)
        except Exception as exc:  # pynetdicom failed on what the peer sent; it has logged the traceback
            reason = f"pynetdicom failed on {event} in state {self.current_state}: {type(exc).__name__}: {exc}"
            _abort(self.dul, reason, abort_pdu(INVALID_PARAMETER_VALUE))
            # pynetdicom has stopped the DUL thread, which will not see "transport closed": act on it here.
            if self.current_state != "Sta1":
                super().do_action("Evt17")


class GuardedDUL(EventDUL):
    """pynetdicom's DUL, refusing a PDU on its header before reading its body; its `run_reactor` is event-driven
    (`reactor.EventDUL`). With a `store` function, the P-DATA-TF PDUs of an established association go through
    `fastpath.StoreAssembler` first, and only what it gives back reaches pynetdicom."""

    def __init__(self, assoc: Association, max_message_bytes: int, peer_memory: PeerMemory, store: StoreFunction | None = None) -> None:
        super().__init__(assoc)
        self.state_machine = _GuardedStateMachine(self)
        self._stores = None if store is None else StoreAssembler(assoc, store)
        self._given_back = 0  # bytes put back in front of the socket for pynetdicom to read: not taken again
        self._max_message = max_message_bytes
        self._message = 0  # bytes of the command or data set in progress, so far
        self._peer_memory = peer_memory
        self._reserved = 0  # bytes of `peer_memory` this association holds (whole STEPs, at least `_message`)
        self._most_reserved = 0

    def run_reactor(self) -> None:
        try:
            super().run_reactor()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """The association has ended: drop what it held of an unfinished message, give its reservation back and,
        when that was large, return the freed heap to the system at once (glibc keeps freed buffers of a few
        hundred KiB in its arenas: an aborted 300 MB data set stayed in the process's RSS)."""
        if self._stores is not None:
            self._stores.discard()
        self.assoc.dimse.message = None
        if self.socket is not None:
            cast(GuardedSocket, self.socket)._unread.clear()
        self._peer_memory.give_back(self._reserved)
        self._reserved = self._message = 0
        if self._most_reserved > TRIM_AFTER:
            release_free_memory()

    def _read_pdu_data(self) -> None:
        sock = cast(GuardedSocket, self.socket)
        if self.state_machine.current_state == "Sta13":
            sock.close()  # we said our last word: what else the peer sends is not read
            return
        try:
            header = sock.peek(HEADER_LENGTH)
        except OSError as exc:  # TimeoutError included: pynetdicom's own answer, connection closed
            log.warning("%s: connection lost while waiting for a PDU header: %s", _peer(self.assoc), exc)
            self.event_queue.put("Evt17")
            return
        if len(header) == HEADER_LENGTH:
            pdu_type, length = parse_header(header)
            refusal = check_header(pdu_type, length, self.assoc.acceptor.maximum_length or 0)
            if refusal is not None:
                _abort(self, refusal.reason, refusal.answer)
                return
            if self._given_back:
                self._given_back = max(0, self._given_back - HEADER_LENGTH - length)
            elif pdu_type == P_DATA_TF and self.state_machine.current_state == "Sta6":
                self._read_pdata(sock, HEADER_LENGTH + length)
                return
        super()._read_pdu_data()

    def _read_pdata(self, sock: GuardedSocket, size: int) -> None:
        """Read a whole P-DATA-TF and let the store assembler take it; what it gives back is read by pynetdicom."""
        try:
            pdu = sock.recv(size)
        except OSError as exc:  # TimeoutError included: as pynetdicom's _read_pdu_data, connection closed
            DUL_LOGGER.error("Connection closed before the entire PDU was received")
            DUL_LOGGER.exception(exc)
            self.event_queue.put("Evt17")
            return
        if len(pdu) == size and (too_long := self._count_fragments(pdu)):
            _abort(self, too_long, abort_pdu(INVALID_PARAMETER_VALUE))
            return
        # a short PDU, or no fast path: pynetdicom reads (and reports) it
        back = pdu if len(pdu) < size or self._stores is None else self._stores.receive(pdu)
        if back:
            sock._unread[:0] = back
            self._given_back = len(back)

    def _count_fragments(self, pdu: bytearray) -> str | None:
        """Add the PDU's fragments to the message in progress; why to abort when a message passes its limit or the
        node's memory for peers, or a fragment names a presentation context that was not accepted (pynetdicom
        would ignore it and wait, holding the association until the network timeout)."""
        position, end = HEADER_LENGTH, len(pdu)
        accepted = self.assoc._accepted_cx
        while position + 6 <= end:
            item_length, context_id, control = PDV_ITEM_HEAD(pdu, position)
            if context_id not in accepted:
                return f"a PDV for presentation context {context_id}, which was not accepted on this association"
            self._message += max(0, item_length - 2)
            if self._message > self._max_message:
                kind = "command" if control & COMMAND_FRAGMENT else "data set"
                return (
                    f"a {kind} of more than {self._max_message // (1024 * 1024)} MiB (dicom.max_message_mb): "
                    f"{self._message} bytes so far, held in memory while it arrives"
                )
            if self._message > self._reserved and not self._reserve():
                return self._peer_memory.refusal("a message of this association", self._message - self._reserved)
            if control & LAST_FRAGMENT:
                self._message = 0
                if self._reserved > STEP:  # keep one step: the next image does not touch the shared count
                    self._peer_memory.give_back(self._reserved - STEP)
                    self._reserved = STEP
            position += 4 + item_length
        return None

    def _reserve(self) -> bool:
        """Reserve the node memory the message in progress needs, in whole steps."""
        wanted = -(-self._message // STEP) * STEP - self._reserved
        if not self._peer_memory.take(wanted):
            return False
        self._reserved += wanted
        self._most_reserved = max(self._most_reserved, self._reserved)
        return True


def _peer(assoc: Association) -> str:
    return f"{assoc.requestor.ae_title or '?'}@{assoc.requestor.address}:{assoc.requestor.port}"


def guard_association(
    assoc: Association, client_socket: socket.socket, request_pdu: bytes, max_message_bytes: int, peer_memory: PeerMemory,
    store: StoreFunction | None = None,
) -> None:
    """Give a new, not yet started acceptor association the guarded DUL (messages up to `max_message_bytes`, drawing
    on `peer_memory`), the event-driven reactors, directly encoded C-STORE responses and a socket that starts with
    `request_pdu`; with `store`, the C-STORE fast path (`fastpath.py`) calls it for plain C-STORE requests."""
    assoc.dul = GuardedDUL(assoc, max_message_bytes, peer_memory, store)
    event_driven(assoc)
    fast_store_responses(assoc.dimse)
    # The timeouts live in the DUL's timers: set them again on the new one.
    assoc.acse_timeout, assoc.network_timeout = assoc.acse_timeout, assoc.network_timeout
    assoc.set_socket(GuardedSocket(assoc, client_socket, request_pdu))
