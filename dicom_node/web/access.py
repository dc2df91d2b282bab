"""Who may use the HTTP server.

- `/health` is open to anyone: a load balancer or supervisor must see that the
  process is alive without holding a secret.
- With `http.token` (or any of the named `http.tokens`) set, everything that
  returns data (the API, DICOMweb, `/ready`, `/metrics`) needs
  `Authorization: Bearer <token>` or the session cookie a browser got for it
  (`session.py`); a missing or wrong one gets 401. The token's name is the
  request's identity in the access log. The viewers' HTML, JS and CSS (the
  node's pages and OHIF under /ohif/), the API docs and the OpenAPI schema hold
  no data, so they are served without it (a browser cannot add the header when
  it opens a page): the pages ask for the token once and exchange it for the
  cookie, which the browser then sends with their requests and OHIF's. A token
  is never accepted in a URL.
- With no token configured, only loopback clients are served (403 otherwise):
  a node started without a secret must not expose patient data to the network.

The rule is one middleware over every path, so an endpoint added later is
protected without anyone remembering to protect it.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from dicom_node.web.audit import set_identity
from dicom_node.web.security import Middleware
from dicom_node.web.session import COOKIE, session_name

OPEN_PATHS = frozenset({"/health"})
PAGE_PATHS = frozenset({"/", "/config", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
PAGE_PREFIXES = ("/series/", "/static/", "/ohif/")


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for names and anything unparsable."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _is_page(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def token_name(given: str, tokens: dict[str, str]) -> str | None:
    """The name of the token `given` matches, or None; every token is compared in constant time."""
    found = None
    for name, secret in tokens.items():
        if hmac.compare_digest(given.encode(), secret.encode()):
            found = name
    return found


def access_middleware(tokens: dict[str, str]) -> Middleware:
    """The HTTP middleware enforcing the rule above for the configured tokens by name (none: loopback only);
    it names the identity served (`loopback` or `token:<name>`) for the access log."""

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if path in OPEN_PATHS:
            return await call_next(request)
        if not tokens:
            if not is_loopback(request.client.host if request.client else None):
                return JSONResponse({"detail": "no http.token is configured: only loopback clients are served"}, status_code=403)
            set_identity(request, "loopback")
            return await call_next(request)
        if _is_page(path):
            return await call_next(request)
        given = _bearer(request)
        if given is not None:
            name = token_name(given, tokens)
        else:
            cookie = request.cookies.get(COOKIE)
            name = session_name(cookie, tokens) if cookie else None
        if name is None:
            return JSONResponse(
                {"detail": "missing or wrong bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        set_identity(request, f"token:{name}")
        request.state.token_name = name
        return await call_next(request)

    return check
