"""The pynetdicom internals the front door and the PDU guard rely on are still the ones they were written against.

`dicom_node/net/guard.py`, `reactor.py` and `frontdoor.py` subclass pynetdicom's
DUL, its association, its state machine, its socket wrapper, its request handler
and its server; `reactor.py` copies the two reactor loops with only their waits
changed; `fastpath.py` serves plain C-STORE requests below pynetdicom's DIMSE
layer as pynetdicom would. Each
pynetdicom function they depend on is listed here with what they assume of it
and a digest of its source: after a pynetdicom upgrade this test names every
function that changed, so that someone re-reads the assumption before the
digest is updated. The second test checks the wiring itself.
"""

from __future__ import annotations

import hashlib
import inspect
import socket

import pytest
from pydicom.values import convert_UI
from pynetdicom import AE, _config, fsm
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.fsm import StateMachine
from pynetdicom.pdu_primitives import A_RELEASE
from pynetdicom.service_class import StorageServiceClass, attempt
from pynetdicom.transport import AssociationServer, AssociationSocket, RequestHandler

from dicom_node.net.guard import GuardedDUL, GuardedSocket, guard_association
from dicom_node.net.reactor import EventAssociation
from dicom_node.net.requests import any_uid
from dicom_node.net.responses import StoreResponseDIMSE, encode_store_response
from dicom_node.peer_memory import PeerMemory

RELIED_ON = {
    # name: (function, what we assume, digest of its source in pynetdicom 3.0.4)
    "DULServiceProvider.__init__": (
        DULServiceProvider.__init__, "creates its StateMachine as self.state_machine, socket None", "c82dafa9438ddf70"),
    "DULServiceProvider._read_pdu_data": (
        DULServiceProvider._read_pdu_data, "reads one PDU as socket.recv(6) then socket.recv(length); Evt17/19 on failure",
        "19f2d4e38c13c835"),
    "DULServiceProvider._is_transport_event": (
        DULServiceProvider._is_transport_event, "calls _read_pdu_data when socket.ready, also in Sta13", "8725ed03bb8fbdef"),
    "StateMachine.do_action": (
        StateMachine.do_action, "on an exception in an action: kill_dul() and re-raise, state unchanged", "9a883f44c7f31641"),
    "RequestHandler.handle": (RequestHandler.handle, "_create_association, EVT_CONN_OPEN, assoc.start()", "034823fb4df3a874"),
    "RequestHandler._create_association": (
        RequestHandler._create_association, "an acceptor Association, not started, maximum_length = ae.maximum_pdu_size",
        "05c8d12b79863cdb"),
    "AssociationSocket.__init__": (
        AssociationSocket.__init__, "with client_socket: connected, puts Evt5 on assoc.dul.event_queue", "1f0325fdef2cc353"),
    "AssociationSocket.ready": (AssociationSocket.ready.fget, "select() on self.socket, SSL pending() counted", "3eb58e3d39dc076d"),
    "AssociationSocket.close": (AssociationSocket.close, "shuts down, socket None, Evt17 once", "c726c8db53813d55"),
    "AssociationServer.__init__": (
        AssociationServer.__init__, "takes request_handler; binds and listens in TCPServer.__init__", "edacb98bdfb7b974"),
    "Association.set_socket": (Association.set_socket, "sets dul.socket, refuses a second one", "235681dc751728fb"),
    "Association.acse_timeout": (Association.acse_timeout.fset, "pushes the value into dul.artim_timer", "f357778b5c4db7b2"),
    "Association.network_timeout": (Association.network_timeout.fset, "pushes the value into dul._idle_timer", "d1e01042128ea4a2"),
    # reactor.py: the loops it copies (a change there must be carried over) and what its wake-ups rely on
    "DULServiceProvider.run_reactor": (
        DULServiceProvider.run_reactor, "the loop EventDUL.run_reactor copies, sleeping 1 ms per idle turn", "e3a10eb3a0931e48"),
    "Association._run_reactor": (
        Association._run_reactor, "the acceptor loop EventAssociation._run_reactor copies, sleeping 1 ms per turn", "f28838c5559e462a"),
    "Association.run_reactor": (Association.run_reactor, "an acceptor runs self._run_reactor() once established", "ed8bbbe3b3d6ddae"),
    "DULServiceProvider.send_pdu": (DULServiceProvider.send_pdu, "the one way a PDU to send reaches the DUL", "7cbce5da8594124e"),
    "DULServiceProvider.stop_dul": (DULServiceProvider.stop_dul, "stops the reactor by setting _kill_thread", "28a7e0be126e7b30"),
    "DULServiceProvider.kill_dul": (DULServiceProvider.kill_dul, "stops the reactor by setting _kill_thread", "5ceccf8dd01c2072"),
    "Association.kill": (Association.kill, "waits for stop_dul() (Sta1) while the DUL lives", "8f9713666a7f4cff"),
    "fsm.DT_2": (fsm.DT_2, "a P-DATA-TF is decoded into dimse.msg_queue within the DUL's do_action", "9ec543394e0b49eb"),
    # responses.py: the C-STORE-RSP bytes it writes are the ones this code makes (compared below)
    "DIMSEServiceProvider.send_msg": (
        DIMSEServiceProvider.send_msg, "message from primitive, EVT_DIMSE_SENT, encode_msg's P-DATAs to dul.send_pdu", "a839cf2fb46976d9"),
    "DIMSEMessage.primitive_to_message": (
        DIMSEMessage.primitive_to_message, "the primitive's non-None fields, CommandField, CommandDataSetType 0x0101", "71fd61d5997f0f0c"),
    "DIMSEMessage.encode_msg": (
        DIMSEMessage.encode_msg, "implicit VR LE command set, fragments of max_pdu_length - 6, header 0x03 last", "73000c902c52832d"),
    "StorageServiceClass.SCP": (StorageServiceClass.SCP, "sends its response with self.dimse.send_msg", "63afca7fc6c6e7ee"),
    # fastpath.py: what it mirrors of pynetdicom's receive path for a plain C-STORE-RQ, and when it leaves it alone
    "DIMSEServiceProvider.receive_primitive": (
        DIMSEServiceProvider.receive_primitive, "message None between messages; a whole one to msg_queue after EVT_DIMSE_RECV",
        "5f99c86b14a15cef"),
    "DIMSEMessage.decode_msg": (
        DIMSEMessage.decode_msg, "control bits 1 command, 2 last; the context of the last command fragment; ends at the last "
        "data fragment (later values of that P-DATA dropped)", "f51c777e841a76be"),
    "DIMSEMessage.message_to_primitive": (
        DIMSEMessage.message_to_primitive, "command elements set on the primitive by keyword", "f8f43d34e43450ef"),
    "Association._serve_request": (
        Association._serve_request, "ignores requests after our release, picks the service by the (common extended) SOP class "
        "UID, aborts on an unknown context", "2f24c1759cdf6c8c"),
    "attempt.__exit__": (attempt.__exit__, "logs error_msg and the exception, answers error_status", "fd73ef3737fd4074"),
    "AssociationSocket.send": (AssociationSocket.send, "sends it all, EVT_DATA_SENT; Evt17 on failure", "1ea8158c0b51faca"),
    "C_STORE.Priority": (C_STORE.Priority.fset, "accepts 0, 1 and 2 only", "1f2b085390513e8c"),
    "pydicom convert_UI": (convert_UI, "strips trailing NULs and spaces, splits at backslashes", "68d79469668989a2"),
    "ApplicationEntity.make_server": (
        ApplicationEntity.make_server, "server_class and extra keyword arguments reach the server", "6569298ac5cf837c"),
}


def _digest(function: object) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_the_pynetdicom_internals_we_subclass_are_unchanged() -> None:
    changed = [f"{name}: we assume it {assumption}" for name, (function, assumption, digest) in RELIED_ON.items() if _digest(function) != digest]
    assert not changed, "pynetdicom changed what dicom_node/net/guard.py, frontdoor.py and fastpath.py rely on; re-check:\n" + "\n".join(changed)
    assert "Sta13" in fsm.STATES and ("Evt17", "Sta6") in fsm.TRANSITION_TABLE


def test_guard_association_wires_the_guarded_dul_and_socket() -> None:
    ae = AE("CLARA")
    ae.acse_timeout, ae.network_timeout = 7, 11
    assoc = Association(ae, MODE_ACCEPTOR)
    ours, theirs = socket.socketpair()
    try:
        guard_association(assoc, ours, b"request", 1 << 20, PeerMemory(1 << 20))
        assert isinstance(assoc.dul, GuardedDUL) and isinstance(assoc.dul.socket, GuardedSocket)
        assert type(assoc.dul.state_machine).__name__ == "_GuardedStateMachine"
        assert isinstance(assoc, EventAssociation) and assoc._run_reactor.__func__ is EventAssociation._run_reactor
        assert isinstance(assoc.dimse, StoreResponseDIMSE)
        assert assoc.dul._stores is None  # without a store function, every PDU goes to pynetdicom
        assert not assoc.idle.is_set()  # until its reactor runs, the fast path leaves requests to pynetdicom
        assert assoc.dul._target.__self__ is assoc.dul and assoc.dul._target.__name__ == "run_reactor"  # the thread runs ours
        assert (assoc.dul.artim_timer.timeout, assoc.dul._idle_timer.timeout) == (7, 11)
        assert assoc.dul.event_queue.get_nowait() == "Evt5"  # the connection indication reached the new DUL
        assert assoc.dul.socket.ready and assoc.dul.socket.peek(3) == b"req"
        theirs.sendall(b" and more")
        assert assoc.dul.socket.recv(16) == bytearray(b"request and more")
        # a PDU handed to the DUL, or a stop, wakes its reactor (no byte: it would sleep out its check interval)
        assoc.dul.send_pdu(A_RELEASE())
        assert assoc.dul._wake_reader.recv(16) == b"\0"
        assoc.dul.kill_dul()
        assert assoc.dul._wake_reader.recv(16) == b"\0"
    finally:
        ours.close()
        theirs.close()


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the long UID, on purpose
@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "status", "comment"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", 0x0000, None),  # odd UID: padded with NUL
        ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.55", 0xC211, "C-STORE request lacks AffectedSOPInstanceUID"),  # even
        ("1.2.840.10008.5.1.4.1.1.2", None, 0xA700, "out of disk space."),  # odd comment: padded with a space
        (None, "1." + "2" * 70, 0xA900, ""),  # longer than 64 (stored as received), empty comment
    ],
)
def test_store_responses_are_the_bytes_pynetdicom_sends(
    sop_class: str | None, sop_instance: str | None, status: int, comment: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_config.VALIDATORS, "UI", any_uid)  # as the SCP configures pynetdicom (net/requests.py)
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 7
    response.AffectedSOPClassUID = sop_class
    response.AffectedSOPInstanceUID = sop_instance
    response.Status = status
    response.ErrorComment = comment
    message = C_STORE_RSP()
    message.primitive_to_message(response)
    [pdata] = message.encode_msg(3, 16384)
    [(context_id, value)] = pdata.presentation_data_value_list
    command = encode_store_response(7, status, comment, sop_class, sop_instance)
    assert (context_id, value) == (3, b"\x03" + command)
