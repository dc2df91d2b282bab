"""A data set (or command) longer than `dicom.max_message_mb` aborts its association before it exhausts memory.

pynetdicom holds a whole DIMSE message in memory while it arrives, and so does the
C-STORE fast path: without a limit a peer streaming fragments without the last one
grows the node until it dies. Both ways (fast path and pynetdicom's) are bounded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pynetdicom.sop_class import CTImageStorage

from dicom_node.net.pdu import INVALID_PARAMETER_VALUE, abort_pdu
from tests.hostile.corpus import encode, image
from tests.hostile.peer import RawPeer
from tests.hostile.test_fastpath import COMMAND, COMMAND_LAST, DATA, DATA_LAST, item, pdata, store_command, stored, success
from tests.node_process import NodeProcess

LIMIT_MB = 1
CHUNK = 60_000  # below the 64 KiB PDUs the node accepts
STREAMED = 64 * 1024 * 1024  # what the peer tries to send
SOCKET_BUFFERS = 16 * 1024 * 1024  # what the kernel may take on both ends of a loopback connection after the node stops reading


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp=tmp_path_factory.mktemp("limit-node"), settings={"dicom": {"max_message_mb": LIMIT_MB}}).start(timeout=90)
    yield node
    node.stop()


def fragments_taken(peer: RawPeer, header: int) -> int:
    """Send fragments of one message (never the last) until the node stops taking them; how many bytes it took."""
    sent = 0
    try:
        while sent < STREAMED:
            peer.send(pdata(item(header, bytes(CHUNK))))
            sent += CHUNK
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def test_an_endless_data_set_aborts_the_association_and_the_node_keeps_receiving(node: NodeProcess) -> None:
    ds = image()
    with RawPeer(node.port) as peer:
        peer.associate(also=(CTImageStorage,), max_length=65536)
        peer.send(pdata(item(COMMAND_LAST, store_command(1, ds))))
        sent = fragments_taken(peer, DATA)
        closed, said = peer.closed_by_node(within=10)
    assert closed and said in (b"", abort_pdu(INVALID_PARAMETER_VALUE))  # an A-ABORT, if the socket still took it
    assert sent <= LIMIT_MB * 1024 * 1024 + SOCKET_BUFFERS, f"the node took {sent} bytes of a message limited to {LIMIT_MB} MiB"
    assert "dicom.max_message_mb" in node.log()

    fine = image(rows=512, columns=512)  # 512 KiB of pixels: within the limit
    with RawPeer(node.port) as peer:
        peer.associate(also=(CTImageStorage,), max_length=65536)
        data = encode(fine)
        peer.send(pdata(item(COMMAND_LAST, store_command(2, fine))))
        chunks = [data[at : at + CHUNK] for at in range(0, len(data), CHUNK)]
        for chunk in chunks[:-1]:
            peer.send(pdata(item(DATA, chunk)))
        peer.send(pdata(item(DATA_LAST, chunks[-1])))
        assert peer.receive_pdu() == (0x04, success(2, fine))
    assert stored(node, fine, data)


def test_an_endless_command_is_bounded_too(node: NodeProcess) -> None:
    """A command in fragments goes to pynetdicom, not the fast path: the limit holds there as well."""
    with RawPeer(node.port) as peer:
        peer.associate(also=(CTImageStorage,), max_length=65536)
        sent = fragments_taken(peer, COMMAND)
        closed, _ = peer.closed_by_node(within=10)
    assert closed
    assert sent <= LIMIT_MB * 1024 * 1024 + SOCKET_BUFFERS
