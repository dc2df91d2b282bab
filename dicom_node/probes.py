"""Container health probes with nothing but the image's Python: `python3 -m dicom_node.probes CHECK [PORT]`.

- `dicom` (liveness of a receiver): the DICOM port accepts a TCP connection, which is closed without a byte; the
  front door counts that as a health check, not as a refused peer.
- `alive` (liveness of any process with the HTTP server): `/health` answers.
- `ready` (readiness): `/ready`'s database and disk checks pass, with the node's own token; a PACS or Triton that
  is down must not take a receiver out of its Service (instances still arrive and wait).

A module, not inline Python, because the command must have no spaces or quotes: `podman kube play` joins an exec
probe's arguments into one shell line (a `-c` script with parentheses fails there as a shell syntax error), and the
image has neither curl nor nc for tcpSocket and httpGet probes, which podman runs with those tools. Exits 0 when
healthy, 1 otherwise, with the reason on stderr. Imports nothing of the node: a probe runs every few seconds.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0
DEFAULT_PORTS = {"dicom": 11112, "alive": 8080, "ready": 8080}
READY_CHECKS = ("database", "disk")


def dicom_port_open(port: int) -> str | None:
    """None when 127.0.0.1:`port` accepts a connection, else why not."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS).close()
    except OSError as exc:
        return f"DICOM port {port}: {exc}"
    return None


def http_alive(port: int) -> str | None:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=TIMEOUT_SECONDS).close()
    except (OSError, urllib.error.URLError) as exc:
        return f"/health on port {port}: {exc}"
    return None


def ready(port: int, token: str) -> str | None:
    """None when /ready says the database and the disk are usable (its other checks do not count here)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ready", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as answer:  # 503 carries the checks too
        try:
            body = json.load(answer)
        except ValueError:
            return f"/ready answered {answer.code}"
    except (OSError, ValueError) as exc:
        return f"/ready on port {port}: {exc}"
    failing = [name for name in READY_CHECKS if not body.get("checks", {}).get(name, {}).get("ok")]
    return f"/ready: {', '.join(failing)} not ok" if failing else None


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in DEFAULT_PORTS or len(argv) > 2:
        print(f"usage: python3 -m dicom_node.probes {{{'|'.join(DEFAULT_PORTS)}}} [PORT]", file=sys.stderr)
        return 2
    check = argv[0]
    port = int(argv[1]) if len(argv) == 2 else DEFAULT_PORTS[check]
    if check == "dicom":
        problem = dicom_port_open(port)
    elif check == "alive":
        problem = http_alive(port)
    else:
        problem = ready(port, os.environ.get("DICOM_NODE_HTTP__TOKEN", ""))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
