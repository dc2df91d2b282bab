"""DICOM TLS (PS3.15 annex B): the SCP's server context and the client contexts of destinations, `echo` and `send`.

At least TLS 1.2 both ways, as BCP 195 (the DICOM profile dcmtk uses by
default) asks. A server context verifies client certificates only when it is
given a CA: "who may send" is otherwise the AE allow-list's job.
"""

from __future__ import annotations

import ssl

TlsArgs = tuple[ssl.SSLContext, str | None]  # pynetdicom's `tls_args`: a client context and the host name to verify


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
