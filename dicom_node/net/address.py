"""`AE@host:port`: the one way a DICOM peer is written on the command line.

`serve --export-to`, `echo` and `send` all parse it here, so an operator
learns one spelling and gets the same error message everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicom_node.config import AE_TITLE_PATTERN


@dataclass(frozen=True)
class DicomAddress:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_address(text: str) -> DicomAddress:
    """Parse `AE@host:port` (IPv6 hosts in brackets: `AE@[::1]:104`); ValueError says what is wrong."""
    ae_title, at, hostport = text.strip().rpartition("@")
    if not at or not ae_title:
        raise ValueError(f"{text!r}: expected AE@host:port, e.g. ORTHANC@127.0.0.1:4242")
    if not AE_TITLE_PATTERN.match(ae_title):
        raise ValueError(f"{text!r}: AE title {ae_title!r} must be 1 to 16 characters, no backslash or control characters")
    host, colon, port_text = hostport.rpartition(":")
    if not hostport or hostport.startswith(":"):
        raise ValueError(f"{text!r}: the host is missing: expected AE@host:port, e.g. {ae_title}@127.0.0.1:11112")
    if not colon or (hostport.startswith("[") and hostport.endswith("]")):
        raise ValueError(
            f"{text!r}: the port is missing: expected AE@host:port, e.g. {ae_title}@{hostport}:104 "
            "(104 is DICOM's well-known port; dicom-node listens on 11112 by default)"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number from 1 to 65535")
    return DicomAddress(ae_title, host, int(port_text))
