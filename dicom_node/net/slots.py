"""Association slots: an association whose connection is gone no longer counts against `dicom.max_associations`.

pynetdicom counts an association as long as its thread runs: after a peer's
RST or FIN, its DUL thread notices, the association thread wakes, reports the
abort, our handler records the association's end in the index; only then is
the slot free. 25 associations dropped at once took up to a second to do all
that, and 10 of 25 immediate reconnects were rejected (local limit exceeded)
meanwhile. The limit bounds what live peers can hold; a connection the kernel
knows to be closed holds nothing that the ending thread does not release on
its own. So the count asks the kernel (a zero-timeout `poll()` per association,
only when a new association is negotiated, never per PDU).
"""

from __future__ import annotations

import select
import socket

from pynetdicom import AE
from pynetdicom.association import Association

_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


def connection_gone(assoc: Association) -> bool:
    """True once the association has ended or its peer has closed or reset the connection."""
    if assoc.is_aborted or assoc.is_released:
        return True
    wrapper = assoc.dul.socket
    raw: socket.socket | None = wrapper.socket if wrapper is not None else None
    if raw is None:
        return True  # we closed it (an abort)
    try:
        fd = raw.fileno()
    except (OSError, ValueError):
        return True
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, _GONE)
    return any(events & _GONE for _fd, events in poller.poll(0))


class SlotAE(AE):
    """pynetdicom's AE, whose active associations (what its association limit counts) leave out those whose
    connection is gone."""

    @property
    def active_associations(self) -> list[Association]:
        return [assoc for assoc in super().active_associations if not connection_gone(assoc)]
