"""The front door: connections become pynetdicom associations only once they have sent a sane A-ASSOCIATE-RQ.

pynetdicom's server gives every TCP connection two threads and an association
slot the moment it is accepted, before the peer has said anything; 26 port
scanners then lock every sender out. Here one thread per listening port
accepts connections and holds them, without threads, as *pending* while it
reads the A-ASSOCIATE-RQ with non-blocking I/O (and, on the TLS port, does the
TLS handshake the same way):

- a pending connection has `dicom.handshake_timeout` seconds from connect to a
  complete A-ASSOCIATE-RQ, then it is closed (slowloris, silent sockets);
- at most `dicom.max_pending_connections` are pending, a quarter of them from
  one address; one more closes the oldest (of that address, if it has its
  quarter), so a single flooding host evicts only its own connections, and a
  crowd must open connections faster than a real sender sends its request;
- the header is judged before the body is read (`pdu.check_request_header`)
  and the whole request is decoded (`pdu.check_request`): anything else
  (garbage, another PDU, a 4 GiB claim, a malformed request) is answered with
  an A-ABORT, or nothing, and closed at once.

Only then is the connection handed to pynetdicom (`guard.guard_association`),
which negotiates, applies the association limit and runs the C-STOREs.
Decisions are counted in `dicom_node_connections_refused_total` and logged
with the peer's address: the first `LOGGED_PER_MINUTE` of a minute at INFO,
the others at DEBUG, so that a flood cannot fill the disk with log lines. A
connection closed by its peer without a single byte is a TCP health check, not
a refusal: it is counted in `dicom_node_connection_checks_total`, at DEBUG.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast

from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.transport import AssociationServer, RequestHandler

from dicom_node import metrics
from dicom_node.net.fastpath import StoreFunction
from dicom_node.net.guard import guard_association
from dicom_node.net.pdu import HEADER_LENGTH, Refusal, check_request, check_request_header, parse_header
from dicom_node.peer_memory import PeerMemory

log = logging.getLogger(__name__)

ACCEPTS_PER_WAKEUP = 64  # then the pending connections get their turn
# On a listening socket shared with other receiving processes: how long a process leaves a new connection to the
# others, per association it is running already (an idle process takes it at once).
SHARED_ACCEPT_DELAY = 0.005
LOGGED_PER_MINUTE = 50


@dataclass(frozen=True)
class DoorRules:
    handshake_timeout: float
    max_pending: int
    max_message_bytes: int
    peer_memory: PeerMemory  # what all associations of this process hold of unfinished messages, together
    shared_listener: bool = False  # other receiving processes accept on the same listening socket

    @property
    def max_pending_per_host(self) -> int:
        return max(1, self.max_pending // 4)


class _RefusalLog:
    """INFO for the first `LOGGED_PER_MINUTE` refusals of each minute, then one line saying the rest go to DEBUG."""

    def __init__(self) -> None:
        self._minute_ends = 0.0
        self._count = 0

    def __call__(self, peer: str, reason: str) -> None:
        now = time.monotonic()
        if now >= self._minute_ends:
            self._minute_ends, self._count = now + 60, 0
        self._count += 1
        level = logging.INFO if self._count <= LOGGED_PER_MINUTE else logging.DEBUG
        log.log(level, "connection from %s closed before association: %s", peer, reason)
        if self._count == LOGGED_PER_MINUTE:
            log.warning("%d connections refused within a minute: more this minute are logged at DEBUG only", LOGGED_PER_MINUTE)


@dataclass(eq=False)
class _Pending:
    serial: int
    sock: socket.socket
    address: tuple[str, int]
    deadline: float
    handshaken: bool
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False

    @property
    def peer(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def wanted(self) -> int:
        """Bytes still missing: the header, then the body it announces."""
        if len(self.data) < HEADER_LENGTH:
            return HEADER_LENGTH - len(self.data)
        return HEADER_LENGTH + parse_header(self.data[:HEADER_LENGTH])[1] - len(self.data)


class _Handler(RequestHandler):
    """pynetdicom's request handler, given the socket and the A-ASSOCIATE-RQ the front door read."""

    def setup(self) -> None:
        self.request, self.request_pdu = self.request  # type: ignore[misc]

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        door = cast(FrontDoor, self.server)
        guard_association(assoc, self.request, self.request_pdu, door.rules.max_message_bytes, door.rules.peer_memory, door.store)
        return assoc


class FrontDoor(AssociationServer):
    """An `AssociationServer` whose accept loop admits only connections that sent a sane A-ASSOCIATE-RQ in time."""

    request_queue_size = socket.SOMAXCONN

    def __init__(self, ae: ApplicationEntity, address: tuple[str, int], ae_title: str, contexts: list[Any],
                 ssl_context: ssl.SSLContext | None = None, evt_handlers: list[Any] | None = None, *, rules: DoorRules,
                 listener: socket.socket | None = None, store: StoreFunction | None = None,
                 other_work: Callable[[], int] | None = None) -> None:
        self.rules = rules
        self.store = store  # the C-STORE fast path's store function (fastpath.py); None: pynetdicom's way only
        # What else this process is busy with (the node's pipeline jobs), counted like associations on a shared listener.
        self._other_work = other_work
        self._listener = listener  # a listening socket shared with other receiving processes, instead of binding
        self._pending: dict[int, _Pending] = {}  # in arrival order: the first is the oldest
        self._per_host: Counter[str] = Counter()
        self._serial = 0
        self._accept_at: float | None = None  # leaving new connections to idler processes until then
        self._stopping = False
        self._stopped = threading.Event()
        self._log_refusal = _RefusalLog()
        super().__init__(ae, address, ae_title, contexts, ssl_context, evt_handlers, request_handler=_Handler)
        self._wake_reader, self._wake_writer = socket.socketpair()  # shutdown() wakes the loop through it

    # The listening socket -------------------------------------------------
    def server_bind(self) -> None:
        if self._listener is None:
            super().server_bind()
            return
        self.socket.close()  # the one TCPServer made for binding
        self.socket = self._listener
        self.server_address = self._listener.getsockname()

    def server_activate(self) -> None:
        if self._listener is None:
            super().server_activate()  # a shared listener is listening already

    def server_close(self) -> None:
        """Close our descriptor only: pynetdicom's shutdown() of a listening socket would stop every process sharing
        it from accepting (the loop needs no wake-up from it: `shutdown` wakes it through its socket pair)."""
        self.socket.close()

    # The loop -------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        listener = self.socket
        listener.setblocking(False)
        try:
            with selectors.DefaultSelector() as selector:
                self._selector = selector
                selector.register(listener, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while not self._stopping:
                    for key, _events in selector.select(self._wait()):
                        if key.fileobj is listener:
                            self._listener_ready()
                        elif key.fileobj is self._wake_reader:
                            self._wake_reader.recv(64)
                        elif not key.data.closed:
                            self._advance(key.data)
                    self._resume_accepting()
                    self._expire()
                for pending in list(self._pending.values()):
                    self._close(pending)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop accepting, close the pending connections and the listening socket (associations run to their end)."""
        self._stopping = True
        with suppress(OSError):
            self._wake_writer.send(b"x")
        self._stopped.wait(10)
        self.server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _wait(self) -> float | None:
        times = [self._accept_at] if self._accept_at is not None else []
        if self._pending:
            times.append(next(iter(self._pending.values())).deadline)  # the oldest's
        return max(0.0, min(times) - time.monotonic()) if times else None

    def _listener_ready(self) -> None:
        """Accept what waits; on a shared listener, one connection at a time, and a busy process lets idle ones go first.

        Every process sharing the socket is woken by a new connection, and the first to call accept() takes it:
        one that took all it could find took the four associations that four senders opened at once, leaving the
        other processes idle. A process that runs or admits k associations (or pipeline jobs, which share its
        interpreter lock) now waits k * SHARED_ACCEPT_DELAY before it tries (no longer watching the socket
        meanwhile); if every process is busy, the least busy one takes it.
        """
        if not self.rules.shared_listener:
            self._accept(ACCEPTS_PER_WAKEUP)
            return
        busy = len(self.active_associations) + len(self._pending) + (self._other_work() if self._other_work else 0)
        if not busy:
            self._accept(1)
            return
        self._selector.unregister(self.socket)
        self._accept_at = time.monotonic() + busy * SHARED_ACCEPT_DELAY

    def _resume_accepting(self) -> None:
        if self._accept_at is not None and time.monotonic() >= self._accept_at:
            self._accept_at = None
            self._selector.register(self.socket, selectors.EVENT_READ)
            self._accept(1)  # EAGAIN if an idler process has taken it meanwhile

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.deadline > now:
                return
            self._refuse(oldest, "timeout", Refusal(f"no complete A-ASSOCIATE-RQ within {self.rules.handshake_timeout:g} s"))

    # Steps of a pending connection ---------------------------------------
    def _accept(self, most: int) -> None:
        for _ in range(most):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: make room, the connection waits in the backlog
                log.error("cannot accept a DICOM connection: %s", exc)
                if self._pending:
                    self._refuse(next(iter(self._pending.values())), "evicted", Refusal(f"closed to make room ({exc.strerror})"))
                return
            sock.setblocking(False)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            self._make_room(address[0])
            self._serial += 1
            deadline = time.monotonic() + self.rules.handshake_timeout
            pending = _Pending(self._serial, sock, address[:2], deadline, handshaken=self.ssl_context is None)
            self._pending[pending.serial] = pending
            self._per_host[pending.address[0]] += 1
            self._selector.register(sock, selectors.EVENT_READ, pending)

    def _make_room(self, host: str) -> None:
        """Before a connection from `host` joins the pending ones: close the oldest of its host's, or of all."""
        if self._per_host[host] >= self.rules.max_pending_per_host:
            oldest = next(p for p in self._pending.values() if p.address[0] == host)
            reason = f"closed to make room: {self._per_host[host]} connections from {host} were waiting for their A-ASSOCIATE-RQ"
            self._refuse(oldest, "evicted", Refusal(reason))
        elif len(self._pending) >= self.rules.max_pending:
            oldest = next(iter(self._pending.values()))
            reason = f"closed to make room: {len(self._pending)} connections were waiting for their A-ASSOCIATE-RQ"
            self._refuse(oldest, "evicted", Refusal(reason))

    def _advance(self, pending: _Pending) -> None:
        """Read what the peer sent; refuse, admit, or wait for more."""
        try:
            if not pending.handshaken:
                pending.sock.do_handshake()  # type: ignore[attr-defined]
                pending.handshaken = True
                self._selector.modify(pending.sock, selectors.EVENT_READ, pending)
            while True:
                chunk = pending.sock.recv(pending.wanted())
                if not chunk:
                    if pending.data or self.ssl_context is not None:
                        self._refuse(pending, "closed", Refusal("closed by the peer before a complete A-ASSOCIATE-RQ"))
                    else:
                        self._checked(pending)
                    return
                pending.data += chunk
                if len(pending.data) == HEADER_LENGTH:
                    refusal = check_request_header(*parse_header(pending.data))
                    if refusal is not None:
                        self._refuse(pending, "not-a-request", refusal)
                        return
                if len(pending.data) >= HEADER_LENGTH and pending.wanted() == 0:
                    self._admit(pending)
                    return
        except ssl.SSLWantReadError:
            self._selector.modify(pending.sock, selectors.EVENT_READ, pending)
        except ssl.SSLWantWriteError:
            self._selector.modify(pending.sock, selectors.EVENT_WRITE, pending)
        except (BlockingIOError, InterruptedError):
            pass
        except ssl.SSLError as exc:
            self._refuse(pending, "tls", Refusal(f"TLS handshake failed: {exc.reason or exc}"))
        except OSError as exc:
            self._refuse(pending, "closed", Refusal(f"connection error: {exc}"))

    def _admit(self, pending: _Pending) -> None:
        request = bytes(pending.data)
        refusal = check_request(request)
        if refusal is not None:
            self._refuse(pending, "not-a-request", refusal)
            return
        self._forget(pending)
        sock = pending.sock
        try:
            sock.setblocking(True)
            self.finish_request((sock, request), pending.address)  # type: ignore[arg-type]
        except Exception:
            log.exception("connection from %s: could not start the association", pending.peer)
            with suppress(OSError):
                sock.close()

    def _refuse(self, pending: _Pending, kind: str, refusal: Refusal) -> None:
        self._log_refusal(pending.peer, refusal.reason)
        metrics.count_connection_refused(kind)
        if refusal.answer and pending.handshaken:
            with suppress(OSError):
                pending.sock.send(refusal.answer)
        self._close(pending)

    def _checked(self, pending: _Pending) -> None:
        """Connected and closed without a byte: what a TCP health check does (kubelet's tcpSocket probe, a load
        balancer), every few seconds. Not a refusal: logged at DEBUG and counted apart, so that the refusals a
        hostile peer causes stay what one alerts on."""
        log.debug("connection from %s closed without sending anything (a TCP health check)", pending.peer)
        metrics.count_connection_check()
        self._close(pending)

    def _forget(self, pending: _Pending) -> None:
        if self._pending.pop(pending.serial, None) is not None:
            self._per_host[pending.address[0]] -= 1
            if not self._per_host[pending.address[0]]:
                del self._per_host[pending.address[0]]
        pending.closed = True
        with suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)

    def _close(self, pending: _Pending) -> None:
        self._forget(pending)
        with suppress(OSError):
            pending.sock.close()


def open_front_door(ae: ApplicationEntity, address: tuple[str, int], handlers: list[Any], rules: DoorRules,
                    ssl_context: ssl.SSLContext | None = None, listener: socket.socket | None = None,
                    store: StoreFunction | None = None, other_work: Callable[[], int] | None = None) -> FrontDoor:
    """Listen on `address` (or accept on `listener`, a listening socket another process made) and run the front door
    in a daemon thread.

    Several processes accepting on one listening socket (`rules.shared_listener`) share its connections: each
    process's loop wakes on a new connection and the first to call accept() takes it (the others get EAGAIN); a
    process busy with its own associations waits before it tries (`FrontDoor._listener_ready`), so new ones go to
    idler processes, unlike SO_REUSEPORT's fixed hash of the peer's address."""
    door = ae.make_server(address, evt_handlers=handlers, ssl_context=ssl_context, server_class=FrontDoor, rules=rules, listener=listener,
                          store=store, other_work=other_work)
    thread = threading.Thread(target=door.serve_forever, name=f"FrontDoor@{door.server_address[1]}", daemon=True)
    thread.start()
    return door
