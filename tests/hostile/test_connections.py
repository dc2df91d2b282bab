"""Hostile and broken peers on raw sockets: each gets its expected answer, and the node keeps serving.

Every case states what the attacker sends and what the node must do (answer
with an A-ABORT or A-ASSOCIATE-RJ, close at once, close at a deadline, abort
the association), checked on the wire, in the node's log and in its index.
Then an allowed AE must C-ECHO and C-STORE with dcmtk, and everything stored
before must be unchanged (`HostileNode.serves`). Memory and threads are read
from /proc/<pid>/status of the node process.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dicom_node.net.pdu import INVALID_PARAMETER_VALUE, UNEXPECTED_PDU, UNRECOGNIZED_PDU, abort_pdu, reject_pdu
from tests.dcmtk import echoscu
from tests.export.peers import wait_for
from tests.hostile.conftest import HANDSHAKE_TIMEOUT, NETWORK_TIMEOUT, HostileNode
from tests.hostile.peer import Flood, RawPeer, associate_rq, pdata, pdu

FOUR_GIB = 2**32 - 1
STREAM = 400 * 2**20  # what the attacker tries to send after its 4 GiB claim
MEMORY_GROWTH_KB = 20 * 1024
REQUEST = associate_rq("INSIDER")
ABORT_PDU = pdu(0x07, b"\x00\x00\x00\x00")
CLOSE_WAIT = 15  # generous bound for "the node closed it"; the log says whether it was at once or at a deadline

Case = Callable[[HostileNode], None]
CASES: dict[str, Case] = {}


def case(function: Case) -> Case:
    CASES[function.__name__] = function
    return function


def refused_at_once(node: HostileNode, payload: bytes, answer: bytes, reason: str, tls: ssl.SSLContext | None = None, port: int | None = None) -> None:
    """The node answers `payload` with `answer` (b'': nothing) and closes, for `reason`, not at the handshake deadline."""
    with RawPeer(port or node.port, tls=tls) as peer:
        peer.send(payload)
        closed, received = peer.closed_by_node(CLOSE_WAIT)
        assert closed, "the node kept the connection open"
        assert received == answer
        node.log_about(peer.local_port, reason)


def closed_at_deadline(node: HostileNode, peer: RawPeer) -> None:
    closed, received = peer.closed_by_node(CLOSE_WAIT)
    assert closed and received == b""
    node.log_about(peer.local_port, f"no complete A-ASSOCIATE-RQ within {HANDSHAKE_TIMEOUT:g} s")


def streamed_with_flat_memory(node: HostileNode, peer: RawPeer) -> bytes:
    """Stream up to 400 MiB after a 4 GiB claim: the node stops taking them and its memory does not grow."""
    before = node.status()["VmRSS"]
    sent = peer.stream(STREAM)
    closed, received = peer.closed_by_node(CLOSE_WAIT)
    grown = node.status()["VmRSS"] - before
    assert closed, "the node kept reading the 4 GiB PDU"
    assert sent < 64 * 2**20, f"the node took {sent} bytes of a PDU it should have refused on its header"
    assert grown < MEMORY_GROWTH_KB, f"node memory grew by {grown} kB"
    return received


def associated(node: HostileNode, tls: ssl.SSLContext | None = None, port: int | None = None) -> RawPeer:
    peer = RawPeer(port or node.port, tls=tls)
    peer.associate("INSIDER")
    return peer


def aborted_association(node: HostileNode, peer: RawPeer, reason: str | None = None, answer: bytes | None = None) -> None:
    """The node sent `answer` (None: whatever), closed the socket, logged `reason` and recorded the association as aborted."""
    closed, received = peer.closed_by_node(NETWORK_TIMEOUT + CLOSE_WAIT)
    assert closed, "the node kept the association open"
    if answer is not None:
        assert received == answer
    if reason is not None:
        node.log_about(peer.local_port, reason)
    assert node.association_state(peer.local_port) == "aborted"


# Before an association ------------------------------------------------------------------------------
@case
def http_probe_instead_of_request(node: HostileNode) -> None:
    """A port scanner's HTTP request: 'G' is no PDU type -> A-ABORT (unrecognized PDU), closed at once."""
    refused_at_once(node, b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n", abort_pdu(UNRECOGNIZED_PDU), "unknown PDU type 0x47")


@case
def tls_hello_on_plain_port(node: HostileNode) -> None:
    """A TLS ClientHello on the plain port -> A-ABORT (unrecognized PDU), closed at once."""
    hello = bytes.fromhex("16030100a5010000a10303") + bytes(range(32)) + b"\x00" * 60
    refused_at_once(node, hello, abort_pdu(UNRECOGNIZED_PDU), "unknown PDU type 0x16")


@case
def unknown_pdu_type(node: HostileNode) -> None:
    """PDU type 0x08 (undefined) -> A-ABORT (unrecognized PDU), closed at once."""
    refused_at_once(node, pdu(0x08, b"\x00" * 4), abort_pdu(UNRECOGNIZED_PDU), "unknown PDU type 0x08")


@case
def four_gib_request_claim(node: HostileNode) -> None:
    """An A-ASSOCIATE-RQ claiming 4 GiB, then 400 MiB of zeros -> A-ABORT, closed at once, memory flat."""
    with RawPeer(node.port) as peer:
        peer.send(pdu(0x01, b"", length=FOUR_GIB))
        streamed_with_flat_memory(node, peer)
        node.log_about(peer.local_port, f"A-ASSOCIATE-RQ claims {FOUR_GIB} bytes")


@case
def four_gib_pdata_before_association(node: HostileNode) -> None:
    """A P-DATA-TF claiming 4 GiB before any association, then 400 MiB -> closed at once, memory flat."""
    with RawPeer(node.port) as peer:
        peer.send(pdu(0x04, b"", length=FOUR_GIB))
        streamed_with_flat_memory(node, peer)
        node.log_about(peer.local_port, "P-DATA-TF .* instead of an A-ASSOCIATE-RQ")


@case
def abort_instead_of_request(node: HostileNode) -> None:
    """An A-ABORT as the first PDU -> closed at once, nothing answered."""
    refused_at_once(node, ABORT_PDU, b"", "A-ABORT instead of an A-ASSOCIATE-RQ")


@case
def release_request_instead_of_request(node: HostileNode) -> None:
    """An A-RELEASE-RQ as the first PDU -> A-ABORT (unexpected PDU), closed at once."""
    refused_at_once(node, pdu(0x05, b"\x00" * 4), abort_pdu(UNEXPECTED_PDU), "A-RELEASE-RQ .* instead of an A-ASSOCIATE-RQ")


@case
def associate_accept_sent_to_us(node: HostileNode) -> None:
    """An A-ASSOCIATE-AC (an acceptor's PDU) as the first PDU -> A-ABORT (unexpected PDU), closed at once."""
    refused_at_once(node, pdu(0x02, REQUEST[6:]), abort_pdu(UNEXPECTED_PDU), "A-ASSOCIATE-AC .* instead of an A-ASSOCIATE-RQ")


@case
def request_shorter_than_its_fixed_part(node: HostileNode) -> None:
    """An A-ASSOCIATE-RQ of 10 bytes (the fixed part alone is 68) -> A-ABORT (invalid parameter), closed at once."""
    refused_at_once(node, pdu(0x01, b"\x00" * 10), abort_pdu(INVALID_PARAMETER_VALUE), "A-ASSOCIATE-RQ claims 10 bytes")


@case
def malformed_request(node: HostileNode) -> None:
    """A well-framed A-ASSOCIATE-RQ whose items are garbage -> A-ABORT (invalid parameter), closed at once."""
    body = REQUEST[6:74] + bytes([0x99, 0, 0xFF, 0xFF]) + b"\xab" * 100
    refused_at_once(node, pdu(0x01, body), abort_pdu(INVALID_PARAMETER_VALUE), "malformed A-ASSOCIATE-RQ")


@case
def unsupported_protocol_version(node: HostileNode) -> None:
    """An A-ASSOCIATE-RQ of protocol version 2 -> A-ASSOCIATE-RJ (permanent, ACSE, version not supported), closed."""
    refused_at_once(node, associate_rq("INSIDER", version=2), reject_pdu(0x01, 0x02, 0x02), "protocol version 0x0002")


@case
def half_a_request(node: HostileNode) -> None:
    """Half an A-ASSOCIATE-RQ, then silence -> closed at the handshake deadline, nothing answered."""
    with RawPeer(node.port) as peer:
        peer.send(REQUEST[: len(REQUEST) // 2])
        closed_at_deadline(node, peer)


@case
def silent_connection(node: HostileNode) -> None:
    """A connection that sends nothing -> closed at the handshake deadline."""
    with RawPeer(node.port) as peer:
        closed_at_deadline(node, peer)


@case
def slowloris_request(node: HostileNode) -> None:
    """A valid A-ASSOCIATE-RQ sent one byte every 50 ms -> closed at the handshake deadline, never associated."""
    with RawPeer(node.port) as peer:
        try:
            for byte in REQUEST:
                peer.send(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            pass  # the node closed the connection under us
        closed_at_deadline(node, peer)


@case
def connections_closed_at_once_hold_nothing(node: HostileNode) -> None:
    """100 connections that send a byte and close (more than max_associations) -> each forgotten, logged (beyond 50
    a minute at DEBUG); an echo right after works."""
    ports = []
    for _ in range(100):
        with RawPeer(node.port) as peer:
            peer.send(b"\x01")
            ports.append(peer.local_port)
    node.log_about(ports[-1], "closed by the peer before a complete A-ASSOCIATE-RQ")
    assert "connections refused within a minute: more this minute are logged at DEBUG only" in node.node.log()
    assert echoscu(node.port).returncode == 0


@case
def tcp_health_checks_are_not_refusals(node: HostileNode) -> None:
    """Connect and close without a byte (kubelet's tcpSocket probe, a load balancer's check) -> closed, one DEBUG line
    naming it a health check; never logged as a connection closed before association."""
    earlier = len(node.node.log())  # other cases' connections may have had the same local port
    with RawPeer(node.port) as peer:
        port = peer.local_port
    pattern = re.compile(rf"127\.0\.0\.\d+:{port} closed without sending anything \(a TCP health check\)")
    lines = wait_for(lambda: [line for line in node.node.log()[earlier:].splitlines() if pattern.search(line)], 15, "the health check's line")
    assert " DEBUG " in lines[0]
    assert f":{port} closed before association" not in node.node.log()[earlier:]


@case
def rejected_calling_ae_is_closed_at_once(node: HostileNode) -> None:
    """A valid request from an AE not allowed, which then keeps sending -> A-ASSOCIATE-RJ (calling AE), socket closed."""
    with RawPeer(node.port) as peer:
        peer.send(associate_rq("INTRUDER"))
        assert peer.receive_pdu() == (0x03, bytes.fromhex("00010103"))  # permanent, service user, calling AE not recognised
        try:
            for _ in range(100):
                peer.send(REQUEST)
                time.sleep(0.01)
        except OSError:
            pass
        closed, _ = peer.closed_by_node(CLOSE_WAIT)
        assert closed
        node.log_about(peer.local_port, "not an allowed source")


@case
def unknown_called_ae(node: HostileNode) -> None:
    """A request to a called AE that is not ours -> A-ASSOCIATE-RJ (called AE not recognised), closed."""
    with RawPeer(node.port) as peer:
        peer.send(associate_rq("INSIDER", called="NOTUS"))
        assert peer.receive_pdu() == (0x03, bytes.fromhex("00010107"))
        assert peer.closed_by_node(CLOSE_WAIT)[0]


# Inside an association ---------------------------------------------------------------------------------
@case
def four_gib_pdata_in_association(node: HostileNode) -> None:
    """After a valid association, a P-DATA-TF claiming 4 GiB and 400 MiB -> A-ABORT, closed, aborted, memory flat."""
    with associated(node) as peer:
        peer.send(pdu(0x04, b"", length=FOUR_GIB))
        received = streamed_with_flat_memory(node, peer)
        assert received in (b"", abort_pdu(INVALID_PARAMETER_VALUE))  # the reset may overtake the A-ABORT
        node.log_about(peer.local_port, f"P-DATA-TF claims {FOUR_GIB} bytes, more than the 262144 we accept")
        assert node.association_state(peer.local_port) == "aborted"


# (case, what the attacker sends after associating, what the node logs; each -> A-ABORT, closed, association aborted)
ABORTED_INSIDE = [
    ("pdata_one_byte_over_the_announced_maximum", pdu(0x04, b"", length=262145), "P-DATA-TF claims 262145 bytes",
     INVALID_PARAMETER_VALUE),
    ("unknown_pdu_in_association", pdu(0x0A, b"\x00" * 16), "unknown PDU type 0x0A", UNRECOGNIZED_PDU),
    ("second_request_claiming_4_gib", pdu(0x01, b"", length=FOUR_GIB), f"A-ASSOCIATE-RQ claims {FOUR_GIB} bytes",
     INVALID_PARAMETER_VALUE),
    # a command of 100 zero bytes: pynetdicom's DUL thread would die on it and leave the association open
    ("pdata_that_is_no_dimse_message", pdata(1, b"\x00" * 100), "pynetdicom failed on", INVALID_PARAMETER_VALUE),
]


def _aborted_inside(payload: bytes, reason: str, abort_reason: int) -> Case:
    def run(node: HostileNode) -> None:
        with associated(node) as peer:
            peer.send(payload)
            aborted_association(node, peer, reason, abort_pdu(abort_reason))

    return run


for _name, _payload, _reason, _abort_reason in ABORTED_INSIDE:
    CASES[_name] = _aborted_inside(_payload, _reason, _abort_reason)


@case
def peer_abort_in_association(node: HostileNode) -> None:
    """The peer's A-ABORT inside an association -> socket closed at once, association aborted."""
    with associated(node) as peer:
        peer.send(ABORT_PDU)
        closed, received = peer.closed_by_node(CLOSE_WAIT)
        assert closed and received == b""
        assert node.association_state(peer.local_port) == "aborted"


@case
def half_a_pdata_then_silence(node: HostileNode) -> None:
    """Half a P-DATA-TF, then silence -> aborted after the network timeout (4 s)."""
    with associated(node) as peer:
        peer.send(pdata(1, b"\x00" * 100)[:50])
        aborted_association(node, peer)


@case
def trickled_pdata(node: HostileNode) -> None:
    """A P-DATA-TF sent one byte every 0.2 s (never silent for the network timeout) -> aborted once the PDU took 4 s."""
    with associated(node) as peer:
        started = time.monotonic()
        try:
            for byte in pdata(1, b"\x00" * 100):
                peer.send(bytes([byte]))
                time.sleep(0.2)
        except OSError:
            pass
        assert time.monotonic() - started < 100 * 0.2, "the node read the whole trickled PDU"
        aborted_association(node, peer)


@case
def idle_associations_end_at_the_network_timeout(node: HostileNode) -> None:
    """25 associations (all of max_associations) opened and left idle -> each aborted after the network timeout,
    freeing its slot: the next echo works."""
    peers = [associated(node) for _ in range(25)]
    try:
        for peer in peers:
            assert peer.closed_by_node(NETWORK_TIMEOUT + CLOSE_WAIT)[0]
        assert {node.association_state(peer.local_port) for peer in peers} == {"aborted"}
        # An aborted association's thread ends just after its socket is closed and its row written (milliseconds, more
        # on a loaded machine): until then its slot counts. Within seconds every slot is free again.
        deadline = time.monotonic() + 3.0
        while (echo := echoscu(node.port)).returncode != 0:
            assert "Local Limit Exceeded" in echo.stdout + echo.stderr and time.monotonic() < deadline, echo.stdout + echo.stderr
            time.sleep(0.05)
    finally:
        for peer in peers:
            peer.close()


# Floods -------------------------------------------------------------------------------------------------------
def serves_during(node: HostileNode, folder: Path) -> None:
    """An allowed AE echoes and stores while the attack runs; the node has no thread per attacking socket."""
    threads = node.status()["Threads"]
    assert threads < 40, f"{threads} threads while under attack"
    node.serves(folder / "during")


def test_flood_of_garbage_and_half_requests(node: HostileNode, tmp_path: Path) -> None:
    """300 garbage connections and 30 half-sent requests, reopened as the node closes them -> allowed AEs still
    echo and store, with a bounded number of threads."""
    with Flood(node.port, 300, b"\x99" * 64) as garbage, Flood(node.port, 30, REQUEST[:40]) as half:
        time.sleep(HANDSHAKE_TIMEOUT + 0.5)  # half requests have met the deadline once and were opened again
        serves_during(node, tmp_path)
    assert garbage.opened > 300 and half.opened > 30, "the node never closed the attacking connections"
    node.serves(tmp_path)


def test_flood_of_silent_connections(node: HostileNode, tmp_path: Path) -> None:
    """300 silent connections from one host (more than max_pending_connections) -> allowed AEs from another
    address still echo and store."""
    with Flood(node.port, 300, b"", reopen=False):
        serves_during(node, tmp_path)
    node.serves(tmp_path)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_peer(name: str, node: HostileNode, tmp_path: Path) -> None:
    CASES[name](node)
    node.serves(tmp_path)
