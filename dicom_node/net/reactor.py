"""Event-driven reactors for pynetdicom's acceptor: wait for the socket or a wake-up instead of sleeping 1 ms a turn.

pynetdicom runs two threads per association, each a polling loop:

- the DUL thread (`DULServiceProvider.run_reactor`) checks its queues and the
  socket, and sleeps 1 ms whenever there was nothing to do;
- the association thread (`Association._run_reactor`) sleeps 1 ms before every
  check for a decoded DIMSE message, a release or an abort.

A C-STORE is stop-and-wait: the request's last PDU waits up to a millisecond
for the DUL, the decoded message up to another for the association thread, the
response up to a third for the DUL again. At 200-300 images/s that is a third
to half of the time per image, and every idle turn takes the GIL from the
other associations. Here:

- `EventDUL.run_reactor` is pynetdicom's loop with the sleep replaced by a
  `poll()` on the socket and a wake-up socket pair, written to when the
  association thread hands the DUL a PDU to send (`send_pdu`) or asks it to
  stop (`_kill_thread`); after every state-machine action it sets
  `user_activity`, the event the association thread waits on;
- `EventAssociation._run_reactor` is pynetdicom's acceptor loop with the sleep
  replaced by a wait on that event (skipped while messages keep coming).

Both still wake every `CHECK_SECONDS` without an event, for what has no event
of its own (the ARTIM and idle timers, a kill from a third thread), so a
missed wake-up costs at most that, never a hang. The loops are copies of
pynetdicom 3.0.4's with only the waits changed; tests/hostile/test_pynetdicom_hooks.py
fails when pynetdicom changes them. The same change would fit pynetdicom itself
(its source carries "TODO: try and make this event based"): a candidate to
propose upstream.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
from contextlib import suppress
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket

# The loops log what pynetdicom's own log, under its names
LOGGER = logging.getLogger("pynetdicom.dul")
ASSOC_LOGGER = logging.getLogger("pynetdicom.association")
CHECK_SECONDS = 0.05  # the longest either reactor waits without an event (timers, a kill from another thread)
_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


class EventDUL(DULServiceProvider):
    """pynetdicom's DUL, waiting in `poll()` for the socket or a wake-up when there is nothing to do."""

    def __init__(self, assoc: Association) -> None:
        # Before the base class: its __init__ sets `_kill_thread`, whose setter wakes the reactor.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self.user_activity = threading.Event()  # set after each state-machine action: the association may have work
        super().__init__(assoc)

    @property
    def _kill_thread(self) -> bool:
        return self._stop_requested

    @_kill_thread.setter
    def _kill_thread(self, value: bool) -> None:
        self._stop_requested = value
        if value:
            self.wake()

    def wake(self) -> None:
        """Make the reactor look at its queues now (from any thread)."""
        with suppress(OSError):  # BlockingIOError: a wake-up is already pending; closed: the reactor has ended
            self._wake_writer.send(b"\0")

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self.wake()

    def _buffered(self) -> bool:
        """Data already read from the kernel but not yet by the DUL (which a poll() on the socket cannot see)."""
        sock = self.socket
        if sock is None:
            return False
        if getattr(sock, "_unread", None):  # GuardedSocket: the A-ASSOCIATE-RQ the front door read, a peeked header
            return True
        raw = sock.socket
        return isinstance(raw, ssl.SSLSocket) and raw.pending() > 0

    def _wait(self) -> None:
        """Until the socket is readable, a wake-up arrives or CHECK_SECONDS pass."""
        if self._buffered():
            return
        poller = select.poll()
        poller.register(self._wake_reader, select.POLLIN)
        sock = cast(AssociationSocket | None, self.socket)
        raw = sock.socket if sock is not None else None
        if raw is not None:
            with suppress(ValueError, OSError):  # closed meanwhile: wait for the wake-up or the timeout only
                poller.register(raw, _READABLE)
        try:
            ready = poller.poll(CHECK_SECONDS * 1000)
        except OSError:
            return
        for fd, _events in ready:
            if fd == self._wake_reader.fileno():
                with suppress(OSError):
                    while self._wake_reader.recv(4096):
                        pass

    def run_reactor(self) -> None:
        """pynetdicom's `DULServiceProvider.run_reactor`, waiting on events instead of sleeping 1 ms per idle turn."""
        try:
            self._run_reactor()
        finally:
            self.user_activity.set()  # the association thread sees at once that the DUL has ended
            self._wake_reader.close()
            self._wake_writer.close()

    def _run_reactor(self) -> None:
        self._idle_timer.start()
        self.socket = cast("AssociationSocket", self.socket)
        idle = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if idle:
                self._wait()
            if self._kill_thread:
                break
            # The ARTIM timer first, so that its event is queued ahead of any other of this turn
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                # Either encode and send a primitive (from the state machine) or receive and decode a PDU per turn
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                LOGGER.error("Exception in DUL.run(), aborting association")
                LOGGER.exception(exc)
                # Bypass the state machine and send an A-ABORT, as pynetdicom does
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                idle = True
                continue
            self.state_machine.do_action(event)
            self.user_activity.set()
            idle = False


class EventAssociation(Association):
    """An acceptor association whose reactor waits for its DUL's `user_activity` instead of sleeping 1 ms a turn.

    Given to an association created by pynetdicom (`event_driven`) rather than
    constructed, so that pynetdicom's request handler stays as it is."""

    dul: EventDUL
    # Clear while the reactor takes or serves a message pynetdicom decoded, and until it first runs (the association
    # is being accepted, its EVT_ACCEPTED handlers may not have run): the C-STORE fast path (fastpath.py) waits for it.
    idle: threading.Event

    def _run_reactor(self) -> None:
        """pynetdicom's `Association._run_reactor` (acceptor), with the wait changed."""
        activity = self.dul.user_activity
        busy = False
        self._is_paused = False
        while not self._kill:
            if not busy:  # while messages keep coming, the next is looked for at once
                activity.wait(CHECK_SECONDS)
            activity.clear()  # before looking: what arrives from now on sets it again

            # pynetdicom lets the reactor be paused (the acceptor's own send_*() calls): wait for the checkpoint
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            self.idle.clear()  # before looking
            context_id, msg = self.dimse.get_msg(block=False)
            busy = msg is not None
            if msg:
                self._serve_request(msg, cast(int, context_id))
            self.idle.set()

            if self.is_established and self.acse.is_release_requested():
                # Released before the answer goes out (pynetdicom sets it after): the DUL, no longer a millisecond
                # behind, may see the peer close the connection before this thread gets on, and EVT_CONN_CLOSE
                # handlers can then tell a released association from a dropped one.
                self.is_released = True
                self.acse.send_release(is_response=True)
                ASSOC_LOGGER.info("Association Released")
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                ASSOC_LOGGER.info(log_msg)
                self.dul.receive_pdu(wait=False)  # EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                ASSOC_LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


def event_driven(assoc: Association) -> None:
    """Make a new, not yet started acceptor association (whose DUL is an EventDUL) run the event-driven reactor."""
    if not isinstance(assoc.dul, EventDUL):
        raise TypeError("the event-driven association reactor needs an EventDUL")
    assoc.__class__ = EventAssociation
    cast(EventAssociation, assoc).idle = threading.Event()
