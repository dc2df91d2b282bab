"""Give the memory of a finished job back to the system.

glibc serves large blocks (numpy arrays of a CT series) with mmap and returns
them on free, but raises that threshold to the size of each mmapped block that
is freed (up to 32 MiB).  After the first series, most of a job's arrays then
come from the heap of whichever thread allocated them (the decoder and pipeline
threads each get their own arena), where freed memory stays with the process:
P001 peaked 70-150 MiB higher that way.  A fixed threshold keeps every block of
1 MiB or more in its own mapping, whatever was freed before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at 1 MiB; False (and nothing changed) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.debug("no mallopt in the C library (%s): the allocator keeps its own policy", name)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
