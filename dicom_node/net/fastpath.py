"""C-STORE requests taken from the P-DATA-TF PDUs as they are read, and answered from the DUL thread.

Below the network, everything pynetdicom does per received image is
per-message machinery, not protocol: each PDU is decoded into objects and
fired as events, its fragments are copied into a message, the command set is
decoded into a pydicom Dataset and then into a primitive (each UID validated),
the message is queued for the association thread, which wakes, builds the
service class, an Event and a response primitive, and hands the response
back to the DUL thread to send. That was about half of the receiving
process's CPU per image, and two thread hand-offs per image on a
stop-and-wait exchange.

`StoreAssembler` reads a P-DATA-TF's presentation data values itself. When a
whole command set in one fragment is a plain C-STORE-RQ (only the fields a
C-STORE-RQ has, every mandatory one present, a data set announced, UIDs in
ASCII, a priority pynetdicom accepts) on an accepted context whose service
pynetdicom would pick is Storage, and nothing else is in flight on the
association, the data set fragments that follow are joined, the SCP's store
function is called with them, and the C-STORE-RSP pynetdicom would send
(`responses.py`, same bytes) goes out on the socket at once. The DUL thread
is the one thread that ever writes to the socket, so responses cannot
interleave with anything pynetdicom sends. A request that arrives while the
association thread is still finishing the message before (or has not started
yet) waits for it, up to `IDLE_WAIT_SECONDS`, and an answer that thread queued
goes out before this one.

Anything else takes pynetdicom's way, unchanged, by the simplest means: the
PDUs (or the remaining values of one) of the message so far are put back in
front of the socket (`GuardedSocket._unread`), each as a P-DATA-TF of its
own no longer than the original, and pynetdicom reads them as if they had
just arrived. Association negotiation, C-ECHO, release, abort, malformed PDUs,
incomplete commands (answered by `requests.py`), a command spread over
several fragments, an unknown element, a presentation context changing within
a message: pynetdicom sees exactly the bytes it would have seen. The header
limits of `guard.py` apply to every PDU before this reads its body.

The path is used only while nobody listens to what it skips: no handler bound
to the PDU, data and DIMSE-sent events, none to EVT_DIMSE_RECV but
`refuse_incomplete_store` (which does nothing for a complete command), and
pynetdicom not set to spool data sets to files. The statuses and the log are
the handler's, as through pynetdicom (whose standard DIMSE log handlers the
SCP switches off); an exception in the store function is logged and answered
0xC211, as pynetdicom's `attempt` does. tests/hostile/test_pynetdicom_hooks.py
checks the pynetdicom code this mirrors; tests/hostile/test_fastpath.py sends
the odd cases both ways.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pynetdicom import _config, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from dicom_node.net.pdu import COMMAND_FRAGMENT, HEADER_LENGTH, LAST_FRAGMENT, P_DATA_TF, PDV_ITEM_HEAD
from dicom_node.net.requests import refuse_incomplete_store
from dicom_node.net.responses import encode_store_response, fits_one_fragment, response_pdu

if TYPE_CHECKING:
    from pynetdicom.association import Association

# The store function: (association, SOP Class UID, SOP Instance UID, transfer syntax UID, data set) -> (status, comment)
StoreFunction = Callable[["Association", str, str, str, memoryview], tuple[int, str]]

SERVICE_LOGGER = logging.getLogger("pynetdicom.service_class")  # where pynetdicom logs a failing EVT_C_STORE handler
HANDLER_FAILED = 0xC211  # pynetdicom's answer when the EVT_C_STORE handler raises
IDLE_WAIT_SECONDS = 0.05  # the longest a request waits for the association thread before pynetdicom takes it

C_STORE_RQ = 0x0001
NO_DATA_SET = 0x0101
LAST_COMMAND = COMMAND_FRAGMENT | LAST_FRAGMENT  # a whole command in one fragment
_ELEMENT_HEAD = struct.Struct("<HHL").unpack_from  # command set: implicit VR little endian
_US = struct.Struct("<H").unpack_from
# The elements of a C-STORE-RQ this path takes (PS3.7 table 9.1-1 less the Move Originator pair, 0x1030/0x1031)
_GROUP_LENGTH, _SOP_CLASS, _COMMAND_FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE, _SOP_INSTANCE = (
    0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000
)
_US_ELEMENTS = (_COMMAND_FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE)
_REQUIRED = frozenset((_SOP_CLASS, _SOP_INSTANCE, *_US_ELEMENTS))
_PRIORITIES = (0, 1, 2)  # what pynetdicom's C_STORE.Priority accepts
# Events whose handlers would miss what this path skips
_SKIPPED_EVENTS = (evt.EVT_DATA_RECV, evt.EVT_PDU_RECV, evt.EVT_DIMSE_SENT, evt.EVT_PDU_SENT, evt.EVT_DATA_SENT)


class StoreCommand:
    """The fields of a C-STORE-RQ command set, as pynetdicom's primitive would hold them."""

    __slots__ = ("message_id", "sop_class", "sop_instance")

    def __init__(self, message_id: int, sop_class: str, sop_instance: str) -> None:
        self.message_id = message_id
        self.sop_class = sop_class
        self.sop_instance = sop_instance


def _uid(value: memoryview) -> str | None:
    """A UI value as pydicom reads it (trailing NULs and spaces off), or None if pydicom would read it otherwise
    (non-ASCII, several values) or pynetdicom would refuse it (empty)."""
    try:
        text = bytes(value).decode("ascii").rstrip("\0 ")
    except UnicodeDecodeError:
        return None
    return text if text and "\\" not in text else None


def parse_store_command(command: memoryview) -> StoreCommand | None:
    """The C-STORE-RQ in an encoded command set, or None if it is anything else or anything unusual."""
    values: dict[int, memoryview] = {}
    pos, end, last = 0, len(command), -1
    while pos < end:
        if end - pos < 8:
            return None
        group, element, length = _ELEMENT_HEAD(command, pos)
        pos += 8
        if group != 0 or element <= last or length > end - pos:
            return None
        values[element] = command[pos : pos + length]
        pos += length
        last = element
    if not _REQUIRED <= values.keys() <= _REQUIRED | {_GROUP_LENGTH} or any(len(values[tag]) != 2 for tag in _US_ELEMENTS):
        return None
    if _GROUP_LENGTH in values and len(values[_GROUP_LENGTH]) != 4:
        return None
    (field,), (message_id,), (priority,), (data_set,) = (_US(values[tag]) for tag in _US_ELEMENTS)
    if field != C_STORE_RQ or data_set == NO_DATA_SET or priority not in _PRIORITIES:
        return None
    sop_class, sop_instance = _uid(values[_SOP_CLASS]), _uid(values[_SOP_INSTANCE])
    if sop_class is None or sop_instance is None:
        return None
    return StoreCommand(message_id, sop_class, sop_instance)


def _pdatas(pieces: list[memoryview]) -> bytearray:
    """P-DATA-TF PDUs, one holding each piece (encoded presentation data value items), in one buffer."""
    out = bytearray()
    for values in pieces:
        out += struct.pack(">BxL", P_DATA_TF, len(values))
        out += values
    return out


class StoreAssembler:
    """The C-STORE requests of one association, assembled from its P-DATA-TF PDUs in the DUL thread."""

    def __init__(self, assoc: Association, store: StoreFunction) -> None:
        self.assoc = assoc
        self.store = store
        self._command: StoreCommand | None = None  # the request whose data set is being received
        self._context_id = 0
        self._fragments: list[memoryview] = []
        self._earlier: list[memoryview] = []  # this message's values in earlier PDUs, to give back if need be

    def receive(self, pdu: bytearray) -> bytes | bytearray:
        """Take a whole P-DATA-TF PDU; return the PDUs pynetdicom must read instead (b"": all taken here)."""
        view = memoryview(pdu)
        pos, end = HEADER_LENGTH, len(view)
        start = pos  # where this PDU's part of the current message begins
        while pos < end:
            if end - pos < 6:
                return self._give_back(view, start if self._command else pos)
            length, context_id, control = PDV_ITEM_HEAD(view, pos)
            if length < 2 or length > end - pos - 4:
                return self._give_back(view, start if self._command else pos)
            value = view[pos + 6 : pos + 4 + length]
            if self._command is None:
                if control & LAST_COMMAND != LAST_COMMAND or (command := self._takes(context_id, value)) is None:
                    return self._give_back(view, pos)
                self._command, self._context_id, start = command, context_id, pos
            elif control & COMMAND_FRAGMENT or context_id != self._context_id:
                return self._give_back(view, start)
            else:
                self._fragments.append(value)
                if control & LAST_FRAGMENT:
                    self._complete()
                    start = pos + 4 + length
            pos += 4 + length
        if self._command is not None:
            self._earlier.append(view[start:end])
        return b""

    def _takes(self, context_id: int, command: memoryview) -> StoreCommand | None:
        """The request, if this path may serve it: a plain C-STORE-RQ on an accepted context whose service pynetdicom
        would pick is Storage, nobody listening to what the path skips, nothing else in flight."""
        assoc = self.assoc
        request = parse_store_command(command)
        if request is None or context_id not in assoc._accepted_cx:
            return None
        class_uid = assoc.acceptor.accepted_common_extended.get(request.sop_class, (request.sop_class,))[0]
        if not _config.UNRESTRICTED_STORAGE_SERVICE and uid_to_service_class(class_uid) is not StorageServiceClass:
            return None
        if _config.STORE_RECV_CHUNKED_DATASET or any(assoc.get_handlers(event) for event in _SKIPPED_EVENTS):
            return None
        if any(handler != refuse_incomplete_store for handler, _args in assoc.get_handlers(evt.EVT_DIMSE_RECV)):
            return None
        if assoc.dimse.message is not None or not assoc.dimse.msg_queue.empty():
            return None  # pynetdicom is receiving a message, or has one for its association thread
        # The association thread may still be finishing the message before (its answer is out, so the peer sent this)
        # or starting: wait for it, a little, so that one request pynetdicom served does not make the next one its own.
        if not assoc.idle.wait(IDLE_WAIT_SECONDS) or not assoc.is_established or assoc._sent_release:  # type: ignore[attr-defined]
            return None
        return request

    def discard(self) -> None:
        """Forget the message in progress (its association has ended): its PDUs are freed with it."""
        self._command, self._fragments, self._earlier = None, [], []

    def _give_back(self, view: memoryview, start: int) -> bytearray:
        """The current message so far and the rest of this PDU, as P-DATA-TF PDUs for pynetdicom to read."""
        pieces = [*self._earlier, view[start:]] if len(view) > start else self._earlier
        self._command, self._fragments, self._earlier = None, [], []
        return _pdatas(pieces)

    def _complete(self) -> None:
        """Store the assembled data set and answer, as pynetdicom's StorageServiceClass.SCP would."""
        request, context_id, fragments = self._command, self._context_id, self._fragments
        assert request is not None
        self._command, self._fragments, self._earlier = None, [], []
        data = fragments[0] if len(fragments) == 1 else memoryview(b"".join(fragments))
        assoc = self.assoc
        syntax = str(assoc._accepted_cx[context_id].transfer_syntax[0])  # type: ignore[index]
        idle = assoc.dul._idle_timer
        idle.stop()  # the handler's time is not the peer's silence (pynetdicom's association thread ignores it too)
        try:
            status, comment = self.store(assoc, request.sop_class, request.sop_instance, syntax, data)
        except Exception as exc:  # as pynetdicom's `attempt` around the EVT_C_STORE handler
            SERVICE_LOGGER.error("Exception in handler bound to 'evt.EVT_C_STORE'")
            SERVICE_LOGGER.exception(exc)
            status, comment = HANDLER_FAILED, ""
        finally:
            idle.restart()
        self._answer(context_id, request, status, comment or None)

    def _answer(self, context_id: int, request: StoreCommand, status: int, comment: str | None) -> None:
        """Send the C-STORE-RSP: directly when it fits one P-DATA-TF and nothing waits to be sent before it, else
        through pynetdicom's DIMSE provider (queued for the DUL thread, in order)."""
        assoc = self.assoc
        command = encode_store_response(request.message_id, status, comment, request.sop_class, request.sop_instance)
        queued = not assoc.dul.to_provider_queue.empty()  # an answer of the association thread's not yet sent: after it
        if command is not None and fits_one_fragment(command, assoc.dimse.maximum_pdu_size) and not queued:
            assoc.dul.socket.send(response_pdu(context_id, command))  # type: ignore[union-attr]
            return
        response: Any = C_STORE()
        response.MessageIDBeingRespondedTo = request.message_id
        response.AffectedSOPClassUID = request.sop_class
        response.AffectedSOPInstanceUID = request.sop_instance
        response.Status = status
        response.ErrorComment = comment
        assoc.dimse.send_msg(response, context_id)
