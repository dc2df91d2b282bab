"""Readiness: can this node do its work right now?

Each check returns (ok, detail). The node is ready when all pass: the database
answers, the data dir has at least `dicom.min_free_disk_mb` free (below it the
SCP refuses every instance), each readiness hook passes (the Triton server when
one is configured) and each destination accepts a TCP connection. Destination
checks only open and close a socket with a short timeout: a full C-ECHO would
need an association per probe and could be refused by a busy PACS.
"""

from __future__ import annotations

import shutil
import socket
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from dicom_node.config import Destination
from dicom_node.web.context import ReadinessHook, WebContext

Check = tuple[bool, str]
CONNECT_TIMEOUT_SECONDS = 1.0


def check_database(context: WebContext) -> Check:
    try:
        with context.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready; the message says which
        return False, f"database unreachable: {exc}"
    return True, "reachable"


def check_disk(context: WebContext) -> Check:
    minimum = context.config.dicom.min_free_disk_mb
    try:
        free_mb = shutil.disk_usage(context.data_dir).free / 2**20
    except OSError as exc:
        return False, f"data dir {context.data_dir} unusable: {exc}"
    detail = f"{free_mb:.0f} MB free, minimum {minimum} MB"
    return free_mb >= minimum, detail


def check_destination(destination: Destination, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Check:
    address = f"{destination.host}:{destination.port}"
    try:
        with socket.create_connection((destination.host, destination.port), timeout=timeout):
            return True, f"{address} accepts connections"
    except OSError as exc:
        return False, f"{address} unreachable: {exc}"


def check_hook(hook: ReadinessHook) -> Check:
    try:
        hook()
    except Exception as exc:  # a hook says "not ready" by raising
        return False, str(exc) or type(exc).__name__
    return True, "ready"


def readiness(context: WebContext) -> dict[str, Check]:
    """Every check by name; destinations are probed in parallel so that /ready answers within one timeout."""
    checks: dict[str, Check] = {"database": check_database(context), "disk": check_disk(context)}
    for name, hook in context.readiness_hooks.items():
        checks[name] = check_hook(hook)
    destinations = context.config.destinations
    if destinations:
        with ThreadPoolExecutor(max_workers=min(8, len(destinations))) as pool:
            for destination, result in zip(destinations, pool.map(check_destination, destinations)):
                checks[f"destination:{destination.name}"] = result
    return checks
