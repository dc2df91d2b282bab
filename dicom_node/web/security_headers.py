"""Security headers on every response, and the one place that decides the Content-Security-Policy.

The node's own pages load only their own files (`/static/...`: scripts, one
stylesheet, no inline code) and show slices as `blob:` URLs, so the policy is
`'self'` for everything, `blob:`/`data:` for images, no plugins, no `<base>`,
forms only to the node and no framing by other sites (clickjacking).

A part of the site that needs more (the OHIF viewer under /ohif/, the OpenAPI
docs whose pages start Swagger UI and ReDoc with an inline script) gets it from
`CSP_RELAXATIONS`: the directives listed for the longest matching path prefix
replace the node's; all other directives stay as they are. Nothing else in the
code base sets a CSP, and a route that sets its own header keeps it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from dicom_node.web.security import Middleware

NODE_CSP: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' blob: data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

# Path prefix -> the directives that replace NODE_CSP's under it (longest prefix wins).
CSP_RELAXATIONS: dict[str, dict[str, str]] = {
    # FastAPI's /docs and /redoc pages: Swagger UI and ReDoc from this server (fastapi-offline), started by an inline script.
    "/docs": {
        "script-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
    },
    "/redoc": {
        "script-src": "'self' 'unsafe-inline'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "worker-src": "'self' blob:",
    },
    # OHIF (docs/dicomweb.md): an inline script in its index.html, WebAssembly image codecs, decoding web workers
    # from blob: URLs (which fetch blob: and data: URLs), React's inline styles; everything else from this server.
    "/ohif/": {
        "script-src": "'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval'",
        "connect-src": "'self' blob: data:",
        "style-src": "'self' 'unsafe-inline'",
        "worker-src": "'self' blob:",
        "font-src": "'self'",
    },
}

FIXED_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # a JSON or PNG answer is never run as a script or page
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",  # series and job ids in URLs never leave with a link
    "Cross-Origin-Resource-Policy": "same-origin",  # other sites cannot embed the node's images or JSON
}
HSTS = "max-age=31536000"
# Answers carry patient data unless they are one of the site's files: nothing is kept by the browser or a proxy
# (a shared workstation's disk cache, the back button after logging out) but those files.
NO_STORE = "no-store"
# The node's and OHIF's files: kept, and revalidated with their ETag/Last-Modified (an upgrade changes them).
STATIC_FILE = "no-cache"
STATIC_PREFIXES = ("/static/",)


def content_security_policy(path: str) -> str:
    """The CSP for `path`: the node's, with the relaxations of the longest matching prefix applied."""
    prefixes = [prefix for prefix in CSP_RELAXATIONS if path == prefix or path.startswith(prefix.rstrip("/") + "/")]
    directives = dict(NODE_CSP)
    if prefixes:
        directives.update(CSP_RELAXATIONS[max(prefixes, key=len)])
    return "; ".join(f"{name} {sources}" for name, sources in directives.items())


def headers_middleware(https: bool) -> Middleware:
    """Add the security headers (and HSTS when served over TLS) to every response that lacks them; `Cache-Control:
    no-store` on all but the static files (a route serving files of its own, OHIF's, sets `STATIC_FILE` itself)."""

    async def add(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request.url.path))
        response.headers.setdefault("Cache-Control", STATIC_FILE if request.url.path.startswith(STATIC_PREFIXES) else NO_STORE)
        for name, value in FIXED_HEADERS.items():
            response.headers.setdefault(name, value)
        if https:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response

    return add
