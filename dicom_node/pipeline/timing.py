"""Each step's wall time, as every pipeline's result keeps it (`PipelineRun.timings`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall time of the block in `timings[step]` (seconds), also when it raises."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = time.perf_counter() - start
