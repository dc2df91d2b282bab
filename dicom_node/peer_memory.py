"""The node-wide budget for data held in memory on behalf of peers, and its share per process.

A C-STORE's data set is held in memory while its fragments arrive (the fast
path joins them, pynetdicom keeps them in its message), and so is a STOW-RS
body while its parts are parsed. Each is bounded on its own (`dicom.max_message_mb`,
`http.max_stow_mb`), but 25 associations each sending a 1 GiB data set that
never ends would hold 25 GiB: a per-message limit does not bound the node.
`PeerMemory` is what they all draw from: an association reserves room before it
reads more of a message (in steps of `STEP` bytes, so the shared counter is
touched once a mebibyte, not per PDU), a STOW-RS request before it reads more
of its body; whoever would pass the budget is refused (A-ABORT, or 503 for
STOW-RS) before the memory is taken, and gives back what it held.

With several receiving processes (`dicom.receive_processes`), each process
gets an equal share of `dicom.peer_memory_mb`, so that all of them together
stay within it without a counter shared across processes.
"""

from __future__ import annotations

import os
import threading

STEP = 1 << 20  # reservations are made in whole mebibytes
MIB = 1 << 20


def machine_memory_bytes() -> int:
    """The machine's physical memory (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def default_budget_mb() -> int:
    """A quarter of the machine's memory (at least 256 MiB): the rest is the pipeline's, the page cache's, the system's."""
    return max(256, machine_memory_bytes() // 4 // MIB)


class PeerMemory:
    """A thread-safe count of the bytes held for peers in this process, refusing what would pass `limit_bytes`."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._held = 0
        self._lock = threading.Lock()

    @classmethod
    def share(cls, budget_mb: int, processes: int) -> PeerMemory:
        """This process's part of a node-wide budget of `budget_mb` MiB (0: `default_budget_mb()`) shared by
        `processes` receiving processes."""
        return cls((budget_mb or default_budget_mb()) * MIB // max(1, processes))

    @property
    def held(self) -> int:
        return self._held

    def take(self, count: int) -> bool:
        """Reserve `count` bytes; False (and nothing reserved) when that would pass the limit."""
        with self._lock:
            if self._held + count > self.limit_bytes:
                return False
            self._held += count
            return True

    def give_back(self, count: int) -> None:
        with self._lock:
            self._held -= count

    def refusal(self, what: str, wanted: int) -> str:
        """Why `what` was refused, for the log and the peer."""
        return (
            f"{what} would hold {wanted // MIB} MiB more while {self._held // MIB} MiB are held for peers, beyond "
            f"the {self.limit_bytes // MIB} MiB this process may hold (dicom.peer_memory_mb)"
        )
