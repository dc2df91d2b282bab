"""multipart/related bodies (RFC 2387) as DICOMweb uses them: read STOW-RS requests and WADO-RS answers (the
node's own WADO-RS client), write WADO-RS responses; each part as a PS3.10 file.

Pure functions over bytes: no I/O, so a malformed body is a clear `BadMultipart`
with the reason the client gets in its 400 answer.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_preamble  # the public one takes only a path


class BadMultipart(ValueError):
    """The body is not a multipart/related message we can read; the message says why."""


@dataclass(frozen=True)
class Part:
    content_type: str
    body: memoryview


def media_type_parameters(header: str) -> tuple[str, dict[str, str]]:
    """('multipart/related', {'type': 'application/dicom', 'boundary': ...}) from a Content-Type or Accept value."""
    media, *params = header.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.strip().partition("=")
        if name:
            parsed[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def split_parts(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body with their Content-Type (the whole header block is tolerated, not required)."""
    if not boundary:
        raise BadMultipart("multipart/related content type without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise BadMultipart("the body does not contain the boundary given in its content type")
    view = memoryview(body)
    parts = []
    position = start + len(delimiter)
    while True:
        if body[position : position + 2] == b"--":
            break  # the closing delimiter
        header_end = body.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise BadMultipart("a part has no blank line after its headers")
        following = body.find(b"\r\n" + delimiter, header_end + 4)
        if following < 0:
            raise BadMultipart("the body ends without a closing boundary")
        content_type = ""
        for line in body[position:header_end].decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-type":
                content_type = value.strip()
        parts.append(Part(content_type, view[header_end + 4 : following]))
        position = following + 2 + len(delimiter)
    if not parts:
        raise BadMultipart("the body holds no parts")
    return parts


def new_boundary() -> str:
    return f"dicom-node-{secrets.token_hex(12)}"


def multipart_content_type(boundary: str, part_type: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def write_parts(boundary: str, parts: Iterable[tuple[str, bytes | memoryview]]) -> Iterator[bytes]:
    """The body of a multipart/related response, one chunk per part (the caller may stream it)."""
    for content_type, payload in parts:
        yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
        yield bytes(payload)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")


@dataclass(frozen=True)
class Part10:
    """One part as a PS3.10 file: its header bytes (preamble, file meta) and its data set bytes."""

    header: bytes
    dataset: memoryview
    meta: FileMetaDataset


def read_part10(body: memoryview, number: int) -> Part10:
    """Split a part into header and data set; BadMultipart saying which part when it is not a PS3.10 file."""
    stream = io.BytesIO(body)
    try:
        read_preamble(stream, force=False)
        meta = _read_file_meta_info(stream)
    except Exception as exc:  # any parse failure of client data
        raise BadMultipart(f"part {number} is not a DICOM PS3.10 file: {exc}") from None
    if not meta.get("TransferSyntaxUID"):
        raise BadMultipart(f"part {number}: file meta information lacks the Transfer Syntax UID")
    offset = stream.tell()
    if offset >= len(body):
        raise BadMultipart(f"part {number} has file meta information but no data set")
    return Part10(bytes(body[:offset]), body[offset:], meta)
