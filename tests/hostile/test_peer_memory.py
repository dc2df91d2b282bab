"""What peers hold of the node: memory for unfinished messages, bounded node-wide and returned at once; association
slots, free the moment a connection is gone; a PDV on a context that was never accepted ends its association.

The campaign's findings: an unfinished 300 MB data set stayed in the node's RSS after its abort (+300 MB 5 s
later), `max_message_mb` bounded each association alone (25 could hold 25 GiB), 10 of 25 reconnects after 25 RSTs
were rejected, and a PDV for context 99 got no answer until the network timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from pynetdicom.sop_class import CTImageStorage

from dicom_node.net.pdu import INVALID_PARAMETER_VALUE, abort_pdu
from tests.hostile.corpus import image
from tests.hostile.peer import RawPeer, process_status
from tests.hostile.test_fastpath import COMMAND_LAST, DATA, echo_command, echoed, item, pdata, store_command
from tests.node_process import NodeProcess

BUDGET_MB = 96  # the node's memory for peers in this test
FRAGMENT = 262_144 - 6 - 6  # one PDV filling a P-DATA-TF of the node's maximum length (dicom.max_pdu, 256 KiB)
MIB = 2**20
RETURNED_WITHIN_KB = 20 * 1024


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    settings = {"dicom": {"peer_memory_mb": BUDGET_MB, "max_message_mb": 80, "max_associations": 25, "network_timeout": 30}}
    node = NodeProcess(tmp=tmp_path_factory.mktemp("peer-memory-node"), settings=settings).start(timeout=90)
    yield node
    node.stop()


def storing(node: NodeProcess, message_id: int) -> RawPeer:
    """An association past a C-ECHO, that has sent a C-STORE-RQ's command and now sends its data set."""
    peer = RawPeer(node.port)
    peer.associate(also=(CTImageStorage,), max_length=262_144)
    echoed(peer, 99)
    peer.send(pdata(item(COMMAND_LAST, store_command(message_id, image()))))
    return peer


def send_unfinished(peer: RawPeer, size: int) -> int:
    """Send `size` bytes of data set fragments, none of them the last; how many the node took before it closed."""
    fragment = pdata(item(DATA, bytes(FRAGMENT)))
    sent = 0
    try:
        while sent < size:
            peer.send(fragment)
            sent += FRAGMENT
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def rss_kb(node: NodeProcess) -> int:
    assert node.proc is not None
    return process_status(node.proc.pid)["VmRSS"]


def settled_rss_kb(node: NodeProcess, near_kb: int, within: float = 5.0) -> int:
    """The node's RSS once it is within RETURNED_WITHIN_KB of `near_kb`, or after `within` seconds."""
    deadline = time.monotonic() + within
    while (rss := rss_kb(node)) > near_kb + RETURNED_WITHIN_KB and time.monotonic() < deadline:
        time.sleep(0.1)
    return rss


def test_unfinished_messages_share_one_budget_and_their_memory_returns_at_once(node: NodeProcess) -> None:
    with storing(node, 1) as warm:  # the first large message grows the heap's thresholds: measure from after it
        send_unfinished(warm, 40 * MIB)
        warm.send(struct.pack(">BxLxxBB", 0x07, 4, 0, 0))  # A-ABORT from the peer
    before = settled_rss_kb(node, 0, within=2.0)

    first = storing(node, 2)
    took = send_unfinished(first, 60 * MIB)
    time.sleep(0.5)  # the node reads what the socket holds
    during = rss_kb(node)
    second = storing(node, 3)
    second_took = send_unfinished(second, 60 * MIB)  # 60 + 60 MiB > 96: the second passes the budget
    closed, said = second.closed_by_node(within=10)
    assert closed and said in (b"", abort_pdu(INVALID_PARAMETER_VALUE)), said
    assert second_took < (BUDGET_MB - 60 + 20) * MIB  # refused before it held more than the budget (+ socket buffers)
    assert "dicom.peer_memory_mb" in node.log()
    echoed(first, 100)  # the first association, within the budget, is still served
    first.send(struct.pack(">BxLxxBB", 0x07, 4, 0, 0))
    first.close()
    second.close()
    after = settled_rss_kb(node, before)
    print(f"RSS before {before // 1024} MiB, holding {took // MIB} MiB unfinished {during // 1024} MiB, after abort {after // 1024} MiB")
    assert during - before > 40 * 1024, "the unfinished data set was not held: the test measures nothing"
    assert after - before < RETURNED_WITHIN_KB, f"RSS {after - before} kB above before, 5 s after the abort"


def test_a_pdv_for_a_context_never_accepted_aborts_at_once(node: NodeProcess) -> None:
    with RawPeer(node.port) as peer:
        peer.associate(also=(CTImageStorage,))
        started = time.monotonic()
        peer.send(pdata(item(COMMAND_LAST, echo_command(1), context_id=99)))  # a valid C-ECHO-RQ, on context 99
        closed, said = peer.closed_by_node(within=5)
        assert closed and said == abort_pdu(INVALID_PARAMETER_VALUE) and time.monotonic() - started < 2
    assert "presentation context 99, which was not accepted" in node.log()


def reset(peer: RawPeer) -> None:
    """Close with RST (SO_LINGER 0), as a crashed or killed sender's kernel does."""
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()


def hang_up(peer: RawPeer) -> None:
    """Close with FIN, without A-RELEASE or A-ABORT, as a sender that gives up does."""
    peer.close()


@pytest.mark.parametrize("close", [reset, hang_up])
def test_25_reconnects_after_25_dropped_connections_are_all_accepted(node: NodeProcess, close: Callable[[RawPeer], None]) -> None:
    peers: list[RawPeer] = []
    for _ in range(25):
        peers.append(RawPeer(node.port))
        peers[-1].associate()
    for peer in peers:
        close(peer)
    again: list[RawPeer] = []
    try:
        for _ in range(25):
            again.append(RawPeer(node.port))
            again[-1].associate()  # an A-ASSOCIATE-RJ (local limit exceeded) fails here
    finally:
        for peer in again:
            reset(peer)
