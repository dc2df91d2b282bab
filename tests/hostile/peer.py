"""A hostile DICOM peer on a raw socket: PDUs built by hand, sent whole, in halves, slowly or not at all.

Also what a test watches of the node process: its resident memory and thread
count from /proc/<pid>/status, the way an operator would.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, ImplementationClassUIDNotification, MaximumLengthNotification
from pynetdicom.presentation import build_context

VERIFICATION = "1.2.840.10008.1.1"


def pdu(pdu_type: int, body: bytes, length: int | None = None) -> bytes:
    """A PDU of `pdu_type` with `body`; `length` lets the header claim something else."""
    return struct.pack(">BxL", pdu_type, len(body) if length is None else length) + body


def associate_rq(calling: str, called: str = "CLARA", max_length: int = 16384, version: int = 1, also: tuple[str, ...] = ()) -> bytes:
    """A well-formed A-ASSOCIATE-RQ proposing Verification (the bytes echoscu would send) as context 1, and the SOP
    classes in `also` in explicit VR little endian as contexts 3, 5, ..."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    length = MaximumLengthNotification()
    length.maximum_length_received = max_length
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.1"
    primitive.user_information = [length, implementation]
    contexts = [build_context(VERIFICATION)] + [build_context(uid, ["1.2.840.10008.1.2.1"]) for uid in also]
    for number, context in enumerate(contexts):
        context.context_id = 2 * number + 1
    primitive.presentation_context_definition_list = contexts
    request = A_ASSOCIATE_RQ()
    request.from_primitive(primitive)
    data = bytearray(request.encode())
    data[6:8] = struct.pack(">H", version)
    return bytes(data)


def pdata(context_id: int, fragment: bytes, header: int = 0x03) -> bytes:
    """A P-DATA-TF with one PDV: message control header 0x03 = last fragment of a command."""
    item = struct.pack(">LBB", len(fragment) + 2, context_id, header) + fragment
    return pdu(0x04, item)


class RawPeer:
    """One TCP connection to the node, driven byte by byte."""

    def __init__(self, port: int, timeout: float = 10.0, tls: ssl.SSLContext | None = None, source: str = "127.0.0.1") -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.sock = tls.wrap_socket(sock, server_hostname="127.0.0.1") if tls is not None else sock

    @property
    def local_port(self) -> int:
        """Our port: the node's log and its association rows name the peer by it."""
        return self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive_pdu(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next PDU from the node as (type, body); (0, b'') if the node closed instead."""
        self.sock.settimeout(timeout)
        header = self._read(6)
        if len(header) < 6:
            return 0, b""
        pdu_type, length = struct.unpack(">BxL", header)
        return pdu_type, self._read(length)

    def _read(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            try:
                chunk = self.sock.recv(count - len(data))
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk
        return data

    def associate(self, calling: str = "INSIDER", also: tuple[str, ...] = (), max_length: int = 16384) -> None:
        """Send a valid request (Verification, and the SOP classes in `also`) and expect the A-ASSOCIATE-AC."""
        self.send(associate_rq(calling, max_length=max_length, also=also))
        pdu_type, _ = self.receive_pdu()
        assert pdu_type == 0x02, f"expected A-ASSOCIATE-AC, got PDU type 0x{pdu_type:02X}"

    def closed_by_node(self, within: float) -> tuple[bool, bytes]:
        """Whether the node closed the connection within `within` seconds, and what it sent before."""
        deadline = time.monotonic() + within
        received = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, received
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False, received
            except (ConnectionResetError, ssl.SSLError):
                return True, received
            if not chunk:
                return True, received
            received += chunk

    def stream(self, total: int, chunk: int = 1 << 20) -> int:
        """Send up to `total` zero bytes; return how many the node took before it closed the connection."""
        block = bytes(chunk)
        sent = 0
        self.sock.settimeout(10)
        try:
            while sent < total:
                sent += self.sock.send(block[: min(chunk, total - sent)])
        except (BrokenPipeError, ConnectionResetError, TimeoutError, ssl.SSLError):
            pass
        return sent

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Flood:
    """`count` connections from `source` that each send `payload` once, then stay open.

    Every `interval` seconds those the node closed are opened again, as an
    attacker holding connections would; `opened` counts all it ever opened.
    """

    def __init__(self, port: int, count: int, payload: bytes, source: str = "127.0.0.2", reopen: bool = True, interval: float = 0.5) -> None:
        self.port, self.count, self.payload, self.source, self.reopen, self.interval = port, count, payload, source, reopen, interval
        self.opened = 0
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def _connect(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(self.source, 0))
            if self.payload:
                sock.sendall(self.payload)
        except OSError:
            return
        sock.setblocking(False)
        self._open.append(sock)
        self.opened += 1

    def _drop_closed(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self._open:
                selector.register(sock, selectors.EVENT_READ)
            readable = {key.fileobj for key, _ in selector.select(0)}
        for sock in readable:
            try:
                gone = not sock.recv(65536)
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                sock.close()
                self._open.remove(sock)  # type: ignore[arg-type]

    def _run(self) -> None:
        for _ in range(self.count):
            self._connect()
        while not self._stop.wait(self.interval):
            self._drop_closed()
            if self.reopen:
                for _ in range(self.count - len(self._open)):
                    self._connect()

    def __enter__(self) -> "Flood":
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.opened < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self._open:
            sock.close()


def process_status(pid: int) -> dict[str, int]:
    """VmRSS (kB) and Threads of a process, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            values[key] = int(value.split()[0])
    return values
