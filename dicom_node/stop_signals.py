"""SIGTERM and SIGINT as stop requests, taken without a lock.

Python runs a signal handler in the main thread between two bytecodes, possibly
while that thread holds a lock: the one inside `Event.wait`, or the one its
previous handler took when a second signal interrupted it (a service manager's
SIGTERM and then SIGINT, `timeout` signalling the whole process group, an
impatient Ctrl-C). A handler that called `Event.set()` then waited forever for
a lock its own thread held, and the node never stopped (300 SIGTERMs in a row
hung it 4 times in 5). Here the handler only records the signal, and the main
thread looks for it between short sleeps.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

POLL_SECONDS = 0.5  # how soon a stop request is acted on (a signal cuts the sleep short, then it runs on to its end)


class StopSignals:
    """Installs the handlers at once (a signal during start-up stops the process once started)."""

    def __init__(self, *signums: int) -> None:
        self._received: list[int] = []
        for signum in signums or (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._record)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._received.append(signum)  # no lock: list.append is one bytecode's work

    def requested(self) -> bool:
        """Whether a stop signal came (a start-up step that waits polls this)."""
        return bool(self._received)

    def wait(self, stopping: threading.Event) -> None:
        """Return once a stop signal came or another thread set `stopping` (`Event.is_set` takes no lock)."""
        while not self._received and not stopping.is_set():
            time.sleep(POLL_SECONDS)
