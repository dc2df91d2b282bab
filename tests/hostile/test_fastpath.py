"""The C-STORE fast path (dicom_node/net/fastpath.py) against a real node, with PDUs cut the ways peers may cut them.

Every case gets the answer pynetdicom gives (the same bytes where the fast path
answers), the instances it acknowledges are stored, and what the fast path
leaves to pynetdicom (a command in two fragments, a Move Originator, a context
changing within a message, a malformed item after a stored request) still
reaches pynetdicom whole.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import encode as encode_dataset
from pynetdicom.sop_class import CTImageStorage

from dicom_node.net.fastpath import parse_store_command
from dicom_node.net.responses import encode_store_response, response_pdu
from tests.hostile.corpus import encode, image
from tests.hostile.peer import RawPeer
from tests.node.index import query
from tests.node_process import NodeProcess

STORAGE_CONTEXT = 3  # CT Image Storage, explicit VR little endian (peer.associate_rq)
COMMAND, COMMAND_LAST, DATA, DATA_LAST = 0x01, 0x03, 0x00, 0x02


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp=tmp_path_factory.mktemp("fastpath-node")).start(timeout=90)
    yield node
    node.stop()


def store_command(message_id: int, ds: Dataset, **fields: object) -> bytes:
    """The command set of a C-STORE-RQ for `ds`, as pynetdicom's SCU encodes it."""
    request = C_STORE()
    request.MessageID, request.Priority, request.DataSet = message_id, 0, io.BytesIO(b"\0\0")
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    for name, value in fields.items():
        setattr(request, name, value)
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    return encode_dataset(message.command_set, True, True)


def echo_command(message_id: int) -> bytes:
    request = C_ECHO()
    request.MessageID, request.AffectedSOPClassUID = message_id, "1.2.840.10008.1.1"
    message = C_ECHO_RQ()
    message.primitive_to_message(request)
    return encode_dataset(message.command_set, True, True)


def item(header: int, fragment: bytes, context_id: int = STORAGE_CONTEXT) -> bytes:
    """One presentation data value item: length, context, message control header, fragment."""
    return struct.pack(">LBB", len(fragment) + 2, context_id, header) + fragment


def pdata(*items: bytes) -> bytes:
    body = b"".join(items)
    return struct.pack(">BxL", 0x04, len(body)) + body


def success(message_id: int, ds: Dataset) -> bytes:
    """The body of the P-DATA-TF pynetdicom answers a stored instance with."""
    return response_pdu(STORAGE_CONTEXT, encode_store_response(message_id, 0x0000, None, ds.SOPClassUID, ds.SOPInstanceUID) or b"")[6:]


def stored(node: NodeProcess, ds: Dataset, data: bytes) -> bool:
    """Indexed, and its file holds the data set as sent."""
    rows = query(node.data_dir, "SELECT path FROM instance WHERE sop_instance_uid = ?", str(ds.SOPInstanceUID))
    return len(rows) == 1 and (node.data_dir / rows[0][0]).read_bytes().endswith(data)


def associated(node: NodeProcess, max_length: int = 16384) -> RawPeer:
    """An association, past a C-ECHO: the node's association thread is running (until then pynetdicom takes every
    request, and drops a second message in the P-DATA-TF that ends the first)."""
    peer = RawPeer(node.port)
    peer.associate(also=(CTImageStorage,), max_length=max_length)
    echoed(peer, 99)
    return peer


def echoed(peer: RawPeer, message_id: int) -> None:
    peer.send(pdata(item(COMMAND_LAST, echo_command(message_id), context_id=1)))
    assert received_command(peer)[0] == 1  # the C-ECHO-RSP, on context 1


def received_command(peer: RawPeer) -> tuple[int, bytes]:
    """The context and the command set of the next message from the node, in however many P-DATA-TFs it comes."""
    command = b""
    while True:
        pdu_type, body = peer.receive_pdu()
        assert pdu_type == 0x04, f"expected a P-DATA-TF, got PDU type 0x{pdu_type:02X}"
        length, context_id, header = struct.unpack_from(">LBB", body)
        assert len(body) == 4 + length and header & 1, "one command fragment per P-DATA-TF"
        command += body[6:]
        if header & 2:
            return context_id, command


def test_the_command_parser_reads_what_pynetdicom_reads_and_leaves_it_the_rest() -> None:
    ds = image(SOPInstanceUID="1.2.3.4.5")  # odd: padded with a NUL on the wire
    request = parse_store_command(memoryview(store_command(7, ds)))
    assert request is not None
    assert (request.message_id, request.sop_class, request.sop_instance) == (7, CTImageStorage, "1.2.3.4.5")
    assert parse_store_command(memoryview(store_command(7, ds, MoveOriginatorApplicationEntityTitle="PACS"))) is None
    assert parse_store_command(memoryview(echo_command(1))) is None
    priority = bytearray(store_command(7, ds))
    at = priority.index(struct.pack("<HHL", 0, 0x0700, 2))
    priority[at + 8 : at + 10] = struct.pack("<H", 3)  # pynetdicom's primitive refuses it: the message is invalid
    assert parse_store_command(memoryview(bytes(priority))) is None
    assert parse_store_command(memoryview(store_command(7, ds)[:-3])) is None  # truncated


def test_two_requests_in_one_pdu_and_a_data_set_over_several(node: NodeProcess) -> None:
    first, second = image(), image()
    data_first, data_second = encode(first), encode(second)
    with associated(node) as peer:
        peer.send(pdata(item(COMMAND_LAST, store_command(1, first)), item(DATA, data_first[:100])))
        peer.send(pdata(item(DATA, data_first[100:300])))
        peer.send(pdata(item(DATA_LAST, data_first[300:]), item(COMMAND_LAST, store_command(2, second)), item(DATA_LAST, data_second)))
        assert peer.receive_pdu() == (0x04, success(1, first))
        assert peer.receive_pdu() == (0x04, success(2, second))
    assert stored(node, first, data_first) and stored(node, second, data_second)


@pytest.mark.parametrize(
    "cut",
    [
        "command in two fragments",
        "Move Originator",
        "data on another context",
    ],
)
def test_what_the_fast_path_leaves_reaches_pynetdicom_whole(node: NodeProcess, cut: str) -> None:
    ds = image(rows=1024, columns=1024) if cut == "data on another context" else image()  # 2 MiB given back in 33 PDUs
    data = encode(ds)
    command = store_command(5, ds, MoveOriginatorApplicationEntityTitle="PACS", MoveOriginatorMessageID=9) if cut == "Move Originator" else store_command(5, ds)
    with associated(node) as peer:
        if cut == "command in two fragments":
            peer.send(pdata(item(COMMAND, command[:20])))
            peer.send(pdata(item(COMMAND_LAST, command[20:]), item(DATA_LAST, data)))
        elif cut == "data on another context":  # pynetdicom takes the context of the command; so does it here
            peer.send(pdata(item(COMMAND_LAST, command), item(DATA, data[:50])))
            chunks = [data[at : at + 65536] for at in range(50, len(data), 65536)]
            for chunk in chunks[:-1]:
                peer.send(pdata(item(DATA, chunk)))
            peer.send(pdata(item(DATA_LAST, chunks[-1], context_id=1)))
        else:
            peer.send(pdata(item(COMMAND_LAST, command), item(DATA_LAST, data)))
        assert peer.receive_pdu() == (0x04, success(5, ds))
    assert stored(node, ds, data)


def test_echo_and_store_interleaved_on_one_association(node: NodeProcess) -> None:
    images = [image() for _ in range(3)]
    with associated(node) as peer:
        for number, ds in enumerate(images):
            echoed(peer, 2 * number + 1)
            peer.send(pdata(item(COMMAND_LAST, store_command(2 * number + 2, ds)), item(DATA_LAST, encode(ds))))
            assert peer.receive_pdu() == (0x04, success(2 * number + 2, ds))
    assert all(stored(node, ds, encode(ds)) for ds in images)


def test_a_malformed_item_after_a_stored_request_goes_to_pynetdicom(node: NodeProcess, tmp_path: Path) -> None:
    ds = image()
    data = encode(ds)
    with associated(node) as peer:
        broken = struct.pack(">LBB", 1, STORAGE_CONTEXT, COMMAND_LAST)  # an item shorter than its own header
        peer.send(pdata(item(COMMAND_LAST, store_command(1, ds)), item(DATA_LAST, data), broken))
        assert peer.receive_pdu() == (0x04, success(1, ds))
        closed, _ = peer.closed_by_node(10)
        assert closed, "pynetdicom ends an association whose P-DATA-TF it cannot decode"
    assert stored(node, ds, data)


def test_an_answer_longer_than_the_peers_pdus_goes_out_in_fragments(node: NodeProcess) -> None:
    ds = image()
    with associated(node, max_length=64) as peer:  # the command set is ~170 bytes: three P-DATA-TFs, as pynetdicom cuts it
        peer.send(pdata(item(COMMAND_LAST, store_command(1, ds)), item(DATA_LAST, encode(ds))))
        assert received_command(peer) == (STORAGE_CONTEXT, encode_store_response(1, 0x0000, None, ds.SOPClassUID, ds.SOPInstanceUID))
    assert stored(node, ds, encode(ds))
