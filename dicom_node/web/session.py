"""Browser sessions: the token is exchanged once for a cookie, so that no credential ever travels in a URL.

A page cannot add an `Authorization` header to a link or to the requests of a
viewer it opens (OHIF), and a token put in a URL lands in the access log, the
browser history and every proxy's log (the campaign found it in ours). So a
page sends the token once, in the header of `POST /api/session`, and gets a
cookie back: `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
page sends it), `Secure` over HTTPS, for `http.session_hours`. The browser then
sends it with every same-origin request: the pages' API calls, their images,
OHIF's DICOMweb requests. `DELETE /api/session` ends it.

The cookie is `<expiry>.<MAC>.<token name>`, the MAC an HMAC-SHA256 of the expiry
and name keyed by the token itself: nothing is stored on the node, any process
serving the same tokens accepts it, and changing a token ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from fastapi import APIRouter, HTTPException, Request, Response

COOKIE = "dicom_node_session"
router = APIRouter(prefix="/api")


def _mac(secret: str, expires: int, name: str) -> str:
    return hmac.new(secret.encode(), f"{expires}.{name}".encode(), hashlib.sha256).hexdigest()


def session_cookie(name: str, secret: str, expires: int) -> str:
    """The cookie's value for token `name` (whose value is `secret`), valid until `expires` (Unix time)."""
    return f"{expires}.{_mac(secret, expires, name)}.{name}"


def session_name(value: str, tokens: dict[str, str], now: float | None = None) -> str | None:
    """The token name a cookie value was issued for, if it is genuine, unexpired and its token still configured."""
    expires, _, rest = value.partition(".")
    mac, _, name = rest.partition(".")
    if not expires.isdigit() or int(expires) <= (time.time() if now is None else now) or name not in tokens:
        return None
    return name if hmac.compare_digest(mac, _mac(tokens[name], int(expires), name)) else None


@router.post("/session", status_code=204, summary="Exchange the bearer token (in the Authorization header) for a session cookie")
def open_session(request: Request, response: Response) -> None:
    """The access rule has checked the token (or the cookie being renewed) and named it in `request.state.token_name`."""
    settings = request.app.state.context.config.http
    name = getattr(request.state, "token_name", None)
    if name is None:  # tokenless, loopback-only mode: there is nothing to exchange
        raise HTTPException(404, "no http.token is configured: loopback clients need no session")
    seconds = int(settings.session_hours * 3600)
    response.set_cookie(
        COOKIE, session_cookie(name, settings.bearer_tokens[name], int(time.time()) + seconds), max_age=seconds, path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )


@router.delete("/session", status_code=204, summary="End the browser's session (its cookie is removed)")
def close_session(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
