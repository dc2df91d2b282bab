"""The access log: one JSON line per HTTP request, the audit trail of who read which patient's data.

Each line holds `time` (UTC, ISO 8601), `client` (address, after uvicorn's
X-Forwarded-For handling for a proxy on loopback), `identity` (`token:<name>`
for a request with one of the bearer tokens, `loopback` for a tokenless local client,
`anonymous` for the open paths or a refused request), `method`, `path`, `query`
(when there is one) and `status`. Refused requests are logged too: a probe
is what an auditor looks for. No credential is ever written: headers and cookies
are not logged, and the value of a query parameter that may carry one (a token
put in a link by hand or by an old bookmark) is written as `[redacted]`.

The file is opened for each line (append, created 0600): a log rotated by
moving it away is continued in a new file at once, with no signal to the node.
A line that cannot be written is reported in the node's log and the request
is still answered: a full disk must not stop a radiologist reading results.

Changes of the run-time configuration (called AEs, sources, destinations) are audited in the same file,
whoever makes them (REST, the CLI, the configuration file at a start): `event` "config", `identity` (the
token's name, `loopback`, `cli:<user>`, or the configuration file), `time`, `action` (add, update, remove),
`kind`, `name`, and the entity `before` and `after` (null when it did not exist), secrets redacted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_plus

from fastapi import Request, Response

from dicom_node.web.security import Middleware

log = logging.getLogger(__name__)
ANONYMOUS = "anonymous"
REDACTED = "[redacted]"
CREDENTIAL_PARAMETER = re.compile(r"token|auth|session|secret|password|passwd|api[-_]?key|^key$|^code$|signature", re.IGNORECASE)


def redacted_query(query: str) -> str:
    """`query` as sent, but the values of parameters that may hold a credential replaced by `[redacted]`."""
    parts = []
    for part in query.split("&"):
        name, equals, _value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if equals and CREDENTIAL_PARAMETER.search(unquote_plus(name)) else part)
    return "&".join(parts)


def set_identity(request: Request, identity: str) -> None:
    """Record who the request was served to (called by the access rule once it has decided)."""
    request.state.identity = identity


class AccessLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        try:
            with self._lock:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line)
                finally:
                    os.close(fd)
        except OSError as exc:
            log.error("access log %s not written (%s): %s", self.path, exc, line.decode().strip())

    def middleware(self) -> Middleware:
        async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            status = 500  # what the client gets if the app raises
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                entry: dict[str, Any] = {
                    "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "client": request.client.host if request.client else None,
                    "identity": getattr(request.state, "identity", ANONYMOUS),
                    "method": request.method,
                    "path": request.url.path,
                    "status": status,
                }
                if request.url.query:
                    entry["query"] = redacted_query(request.url.query)
                self.write(entry)

        return record


class AuditedChange(Protocol):
    def audit_entry(self) -> dict[str, Any]: ...


def change_recorder(data_dir: Path, access_log: str) -> Callable[[AuditedChange], None] | None:
    """What records a configuration change in the audit log (`http.access_log`; empty: not recorded)."""
    if not access_log:
        return None
    audit = AccessLog(data_dir / access_log)
    return lambda change: audit.write(change.audit_entry())
