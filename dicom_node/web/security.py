"""Requests a browser was tricked into sending: a foreign Host name, or a state change from another site.

Both run before `access` (the token or loopback rule), because both attacks come
from a browser that *is* an allowed client:

- **DNS rebinding.** A page on `evil.example` re-points its own name at 127.0.0.1
  and reads the node's API as "same origin"; the only trace is the `Host` header,
  which still names `evil.example`. So a request whose Host is not one of
  `http.allowed_hosts` (loopback names by default) or the address the server is
  bound to is refused with 400, whatever its token or client address. The open
  paths (`/health`) are exempt: they answer anyone and hold nothing to read, and
  a liveness probe names the address it dialled (kubelet: `Host: <pod IP>:8080`).
- **Cross-site request forgery.** A page on another site can make the browser POST
  a form (or a no-cors `fetch`, `Content-Type: text/plain`) to the node: no
  preflight, and in tokenless mode the request comes from loopback. A browser
  labels every such request: `Sec-Fetch-Site` (Chromium, Firefox, Safari since
  2023) or at least `Origin`. A state-changing request (any method but GET, HEAD,
  OPTIONS) labelled as coming from another origin is refused with 403; one with
  neither header is not from a browser page (curl, the CLI, a script) and passes
  on to the token check. This is the algorithm of Go's `http.CrossOriginProtection`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from dicom_node.config import HttpSettings

Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_HOST = "*"


def host_name(host: str) -> str:
    """The name in a Host header or URL authority, lower case, without port or IPv6 brackets: '[::1]:8080' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") > 1:
        return host  # a bare IPv6 address (as in http.host); a Host header brackets it
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def allowed_hosts(settings: HttpSettings) -> frozenset[str]:
    """The configured names plus the bound address itself, unless that is a wildcard (0.0.0.0, ::)."""
    names = {host_name(name) for name in settings.allowed_hosts}
    try:
        if not ipaddress.ip_address(settings.host).is_unspecified:
            names.add(host_name(settings.host))
    except ValueError:
        names.add(host_name(settings.host))  # a name to bind to is a name clients use
    return frozenset(names)


def host_middleware(allowed: Collection[str], open_paths: Collection[str] = ()) -> Middleware:
    """Refuse (400) requests whose Host header names none of `allowed` ('*' allows any), but on `open_paths`."""

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = request.headers.get("host", "")
        if ANY_HOST not in allowed and host_name(host) not in allowed and request.url.path not in open_paths:
            return JSONResponse(
                {"detail": f"Host {host!r} is not served here: add its name to http.allowed_hosts if it is this node"}, status_code=400
            )
        return await call_next(request)

    return check


def cross_site_reason(request: Request) -> str | None:
    """Why this state-changing request looks sent by a page of another origin, or None when it does not."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return None if fetch_site in ("same-origin", "none") else f"Sec-Fetch-Site is {fetch_site}"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        return f"Origin {origin} is not this node"
    return None


async def cross_origin_check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse (403) state-changing requests that a browser sent from another origin's page."""
    if request.method not in SAFE_METHODS:
        reason = cross_site_reason(request)
        if reason is not None:
            return JSONResponse({"detail": f"cross-origin {request.method} refused: {reason}"}, status_code=403)
    return await call_next(request)
