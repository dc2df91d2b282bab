"""Socket options every DICOM connection of the node needs."""

from __future__ import annotations

import socket

from pynetdicom import evt


def disable_nagle(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: send small PDUs (C-STORE responses) at once.

    Without TCP_NODELAY a response waits for the peer's delayed ACK, about
    40 ms per instance: the single biggest cost of a naive DICOM transfer.
    """
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
