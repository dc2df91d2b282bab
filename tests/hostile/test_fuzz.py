"""Bounded fuzzing (hypothesis) of the PDU checks and of the whole reader: front door, guarded DUL, pynetdicom.

The reader runs in this process, on a loopback port, so that a crash shows as
an exception in any thread (`threading.excepthook`) and every allocation is
seen by tracemalloc: byte streams made of PDUs with any type and any claimed
length (up to 4 GiB), valid and mutated A-ASSOCIATE-RQs and P-DATA-TFs must
neither raise anywhere nor make the reader allocate more than the limits
allow. Afterwards every connection's threads are gone and a C-ECHO works.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynetdicom import AE, evt

from dicom_node.net.frontdoor import DoorRules, FrontDoor, open_front_door
from dicom_node.net.pdu import MAX_ASSOCIATION_PDU, PDU_NAMES, check_header, check_request, check_request_header
from dicom_node.peer_memory import PeerMemory
from tests.hostile.peer import VERIFICATION, associate_rq, pdata, pdu

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")

MAX_PDU = 16384
REQUEST = associate_rq("FUZZER")
FOUR_GIB = 2**32 - 1

lengths = st.one_of(st.integers(0, 300), st.just(FOUR_GIB), st.integers(0, FOUR_GIB), st.sampled_from([MAX_PDU, MAX_PDU + 1]))
pdu_types = st.one_of(st.sampled_from(sorted(PDU_NAMES)), st.integers(0, 255))
raw_pdus = st.builds(lambda kind, length, body, honest: pdu(kind, body, None if honest else length),
                     pdu_types, lengths, st.binary(max_size=512), st.booleans())
mutated_requests = st.builds(lambda at, patch: REQUEST[:at] + patch + REQUEST[at + len(patch):],
                             st.integers(0, len(REQUEST) - 1), st.binary(min_size=1, max_size=4))
pdatas = st.builds(lambda context, fragment, header: pdata(context, fragment, header),
                   st.integers(0, 255), st.binary(max_size=256), st.integers(0, 255))
pieces = st.one_of(raw_pdus, st.just(REQUEST), mutated_requests, pdatas, st.binary(max_size=64))
streams = st.lists(pieces, max_size=6).map(b"".join)


@given(st.binary(min_size=6, max_size=6), st.integers(0, 2**31))
@settings(max_examples=300, deadline=None)
def test_header_checks_bound_every_length(header: bytes, announced: int) -> None:
    kind, length = header[0], int.from_bytes(header[2:], "big")
    refusal = check_header(kind, length, announced)
    if refusal is None:
        assert kind in PDU_NAMES and length <= max(MAX_ASSOCIATION_PDU, announced or 64 * 2**20)
    else:
        assert refusal.answer[:1] in (b"\x07", b"")
    refusal = check_request_header(kind, length)
    assert refusal is not None or (kind == 0x01 and length <= MAX_ASSOCIATION_PDU)


@given(st.one_of(mutated_requests, st.binary(max_size=300).map(lambda body: pdu(0x01, body))))
@settings(max_examples=150, deadline=None)
def test_request_check_never_raises(data: bytes) -> None:
    refusal = check_request(data)
    assert refusal is None or refusal.answer[:1] in (b"\x03", b"\x07")


class Crashes:
    """Exceptions that escaped any thread while fuzzing."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._previous = threading.excepthook

    def __enter__(self) -> "Crashes":
        threading.excepthook = lambda args: self.seen.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}")
        return self

    def __exit__(self, *exc: object) -> None:
        threading.excepthook = self._previous


@pytest.fixture(scope="module")
def reader() -> Iterator[tuple[FrontDoor, list[int]]]:
    """The reader on a loopback port, and the association requests it let through to pynetdicom (the fuzz must
    reach inside some)."""
    ae = AE("CLARA")
    ae.add_supported_context(VERIFICATION)
    ae.maximum_pdu_size = MAX_PDU
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 1.0
    requested: list[int] = []  # peer ports: keeping the associations themselves would keep their memory
    handlers = [(evt.EVT_REQUESTED, lambda event: requested.append(event.assoc.requestor.port))]
    door = open_front_door(ae, ("127.0.0.1", 0), handlers, DoorRules(handshake_timeout=0.5, max_pending=64, max_message_bytes=1 << 20, peer_memory=PeerMemory(64 << 20)))
    yield door, requested
    door.shutdown()


def _send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        try:
            sock.sendall(data)
            sock.settimeout(0.02)
            sock.recv(65536)  # let the node answer the first PDUs before we hang up
        except OSError:
            pass


def _fuzz_reader(reader: tuple[FrontDoor, list[int]], examples: int) -> None:
    door, requested = reader
    port = door.server_address[1]
    baseline_threads = threading.active_count()
    logging.disable(logging.CRITICAL)  # pynetdicom logs a traceback per broken PDU; pytest would keep them all in memory
    tracemalloc.start()
    try:
        with Crashes() as crashes:

            worst = 0  # the most memory allocated on top of what was there while one example ran

            @given(streams)
            @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
            def one_connection(data: bytes) -> None:
                nonlocal worst
                before, _peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                _send(port, data)
                worst = max(worst, tracemalloc.get_traced_memory()[1] - before)

            one_connection()
            deadline = time.monotonic() + 30  # every association ends within its 1 s timeouts (slower on a busy machine)
            while threading.active_count() > baseline_threads and time.monotonic() < deadline:
                time.sleep(0.1)
        assert not crashes.seen, "exceptions escaped threads:\n" + "\n".join(crashes.seen[:10])
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    assert threading.active_count() <= baseline_threads, [t.name for t in threading.enumerate()]
    # per example, because hypothesis's own records grow with the number of examples
    assert worst < 16 * 2**20, f"the reader allocated up to {worst / 2**20:.0f} MiB while one stream was sent"
    assert len(requested) >= examples // 20, f"only {len(requested)} fuzzed streams got through to pynetdicom"
    echo = AE("FUZZER")
    echo.add_requested_context(VERIFICATION)
    assoc = echo.associate("127.0.0.1", port, ae_title="CLARA")
    assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_reader_survives_fuzzed_streams(reader: tuple[FrontDoor, list[int]]) -> None:
    _fuzz_reader(reader, 80)


@pytest.mark.slow
def test_reader_survives_many_fuzzed_streams(reader: tuple[FrontDoor, list[int]]) -> None:
    _fuzz_reader(reader, 2000)
