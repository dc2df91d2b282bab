"""Give the memory of a finished job back to the system.

numpy's large arrays come from glibc's heap once its dynamic mmap threshold has
grown (it rises to the size of each mmapped block that is freed, up to 32 MiB),
and each thread (decoder, pipeline, writer) allocates from an arena of its own;
what a job frees stays with the process, and the next job's peak lands on top of
it (P001: 722 MiB for the first job, up to 776 MiB for the second in one process).
Trimming after each job returns it.  A fixed low mmap threshold would return it
at once too, but every large array then costs fresh page faults: 600,000 per
P001 job instead of 20,000, 0.5-1 s of system time.

The start-up objects (highdicom's tables, the web app, SQLAlchemy's mappers: 340,000
of them) are moved out of the garbage collector's reach once loaded: each job's
objects trigger a full collection, which walked all of them (90 ms per job, in the
middle of a job's steps) and now walks only the job's (10 ms).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        log.debug("no malloc_trim in the C library (%s): freed memory returns as the allocator decides", name)
        return None


def release_free_memory() -> bool:
    """Return the freed heap memory of every arena to the system; False where the C library is not glibc."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def freeze_start_up_objects() -> int:
    """Exempt every object alive now from later collections (they live as long as the process); returns how many."""
    gc.collect()  # what start-up left as garbage is freed now, not kept forever
    gc.freeze()
    return gc.get_freeze_count()
