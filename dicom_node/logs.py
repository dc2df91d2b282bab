"""Log set-up: readable lines by default, one JSON object per line on request.

Messages name the association, study, series and job they are about, so that
`grep <SeriesInstanceUID>` over the log tells the whole story of a series.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TypeVar

T = TypeVar("T")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for key in ("association", "study", "series", "job"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pynetdicom logs every PDU at INFO/DEBUG: our own lines say what matters per association and instance.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # it logs every module it copies


class RepeatingFailure:
    """A loop's failure that repeats at every poll (disk full, database locked) is logged when it starts, when it
    changes and when it ends, not once a second: a traceback per poll buries everything else in the log.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self._current: str | None = None
        self._since = 0.0
        self._repeats = 0

    def run(self, action: Callable[[], T]) -> T | None:
        """`action()`, or None after noting its exception (the caller's loop simply tries again later)."""
        try:
            result = action()
        except Exception as exc:
            self._failed(exc)
            return None
        if self._current is not None:
            self.logger.warning(
                "%s works again after %.0f s (%d failed attempt(s)): %s",
                self.what, time.monotonic() - self._since, self._repeats, self._current,
            )
            self._current = None
        return result

    def _failed(self, exc: Exception) -> None:
        # The first line names the failure; SQLAlchemy puts the statement and its parameters on the next ones.
        summary = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if summary == self._current:
            self._repeats += 1
            return
        self.logger.error("%s failed (logged again when it changes or ends): %s", self.what, summary, exc_info=exc)
        self._current, self._since, self._repeats = summary, time.monotonic(), 1
