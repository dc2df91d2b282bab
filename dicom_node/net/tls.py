"""DICOM TLS (PS3.15 annex B): the SCP's server context and the client contexts of destinations, `echo` and `send`.

At least TLS 1.2 both ways, as BCP 195 (the DICOM profile dcmtk uses by
default) asks. A server context verifies client certificates only when it is
given a CA: "who may send" is otherwise the AE allow-list's job.
"""

from __future__ import annotations

import logging
import ssl
import time

from dicom_node import metrics

log = logging.getLogger(__name__)
EXPIRY_WARNING_DAYS = 30  # a certificate expiring within this many days is logged at start (WARNING)

TlsArgs = tuple[ssl.SSLContext, str | None]  # pynetdicom's `tls_args`: a client context and the host name to verify


def certificate_not_after(cert_file: str) -> float:
    """When the (first) certificate in `cert_file` expires, as a Unix time.

    The standard library's own PEM decoder (the one its test suite uses) reads it: the node has no X.509 library,
    and the `ssl` module exposes a certificate's fields only for a peer's or a CA's."""
    decoded = ssl._ssl._test_decode_cert(cert_file)  # type: ignore[attr-defined]
    return float(ssl.cert_time_to_seconds(decoded["notAfter"]))


def watch_certificate(endpoint: str, cert_file: str, now: float | None = None) -> float | None:
    """Log when `endpoint`'s certificate expires (ERROR if it has, WARNING within EXPIRY_WARNING_DAYS) and export
    the seconds left as `dicom_node_tls_certificate_expiry_seconds{endpoint}`; returns its expiry (None: unreadable)."""
    try:
        not_after = certificate_not_after(cert_file)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("%s TLS certificate %s: its expiry cannot be read (%s)", endpoint, cert_file, exc)
        return None
    metrics.watch_certificate(endpoint, not_after)
    days = (not_after - (time.time() if now is None else now)) / 86400
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(not_after))
    if days < 0:
        log.error("%s TLS certificate %s EXPIRED on %s (%.0f days ago): peers will refuse the handshake", endpoint, cert_file, expires, -days)
    elif days < EXPIRY_WARNING_DAYS:
        log.warning("%s TLS certificate %s expires on %s, in %.1f days: renew it", endpoint, cert_file, expires, days)
    else:
        log.info("%s TLS certificate %s expires on %s (in %.0f days)", endpoint, cert_file, expires, days)
    return not_after


def server_context(cert_file: str, key_file: str, ca_file: str | None = None) -> ssl.SSLContext:
    """The SCP's context; with `ca_file`, a client certificate signed by it is required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls(host: str, ca_file: str | None, cert_file: str | None = None, key_file: str | None = None) -> TlsArgs:
    """A client context verifying the peer `host` against `ca_file` (None: the system's CAs), with our certificate if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context, host
