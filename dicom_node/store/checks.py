"""Is a received data set fit to acknowledge? Checked on its encoded bytes, before anything is stored.

pydicom reads leniently (it guesses the VR encoding, stops quietly at a
truncation) and reads lazily, so a data set whose header parses may still be
one the pipeline cannot decode: answering Success for it would acknowledge an
instance nobody can use. These checks walk the element headers of the encoded
data set in the negotiated transfer syntax, Pixel Data and what follows it
included (the job reads it all), without decoding any value but the few image
attributes that size the pixels (pixel bytes are skipped, never looked at):

- every element header and value fits in the bytes received; sequences, items
  and encapsulated fragments are delimited where they claim to be;
- the VR encoding is the negotiated one (an explicit VR body in an implicit VR
  context, or the reverse, is refused, not guessed);
- Pixel Data is native (defined length) in a native transfer syntax and
  encapsulated in a compressed one, and native Pixel Data holds at least
  Rows x Columns x Samples per Pixel x Frames x Bits Allocated / 8 bytes
  (bits packed when Bits Allocated is 1).

A deflated data set is inflated in bounded steps, so a deflate bomb costs at
most the configured cap in memory before it is refused.

Everything here is a pure function of bytes and a transfer syntax UID: the
SCP calls `checked_dataset` once per C-STORE, `dicom-node send` calls it on
each file before sending, and a fuzz test calls it on arbitrary bytes. It
runs per image, so it reads headers with `struct` and never builds a
pydicom Dataset.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

# C-STORE failure statuses (PS3.4 B.2.3) for what arrives unfit
OUT_OF_RESOURCES = 0xA700
NOT_MATCHING = 0xA900
UNDECODABLE = 0xC210
MISSING_UIDS = 0xC211

PIXEL_DATA = 0x7FE00010
_FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_MAX_DEPTH = 32
_INFLATE_STEP = 1 << 20

# (0028,xxxx) attributes that size native pixel data
_SAMPLES, _FRAMES, _ROWS, _COLUMNS, _BITS = 0x00280002, 0x00280008, 0x00280010, 0x00280011, 0x00280100
_IMAGE_TAGS = frozenset((_SAMPLES, _FRAMES, _ROWS, _COLUMNS, _BITS))

_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"))
_SHORT_VRS = frozenset(
    (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US")
)
_VRS = _LONG_VRS | _SHORT_VRS


@dataclass(frozen=True)
class Problem:
    """Why a data set is refused: the C-STORE status and its ErrorComment (LO: no backslash; cut at 64 when sent)."""

    status: int
    comment: str


class Refused(Exception):
    """The data set must not be acknowledged; `problem` says with which status and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.comment)
        self.problem = problem


class _Bad(Exception):
    """Internal: the walk stopped at an undecodable spot (message = the reason)."""


def inflate(raw: bytes | memoryview, max_bytes: int) -> bytearray:
    """A Deflated Explicit VR Little Endian data set, inflated; Refused past `max_bytes` or if it is not deflate data.

    zlib is fed the input whole but asked for at most one step of output at a
    time, so memory grows with what was inflated so far, never beyond the cap.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    pending: bytes | memoryview = raw
    try:
        while pending and len(out) <= max_bytes:
            out += inflater.decompress(pending, min(_INFLATE_STEP, max_bytes + 1 - len(out)))
            pending = inflater.unconsumed_tail
        if len(out) <= max_bytes:
            out += inflater.flush()  # all input consumed: at most what zlib held back of its last step
    except zlib.error as exc:
        raise Refused(Problem(UNDECODABLE, f"deflated data set cannot be inflated: {exc}")) from None
    if len(out) > max_bytes:
        raise Refused(Problem(OUT_OF_RESOURCES, f"inflated data set exceeds {max_bytes / 2**20:g} MiB (dicom.max_inflated_mb)"))
    if not inflater.eof:
        raise Refused(Problem(UNDECODABLE, "deflated data set is truncated"))
    return out  # not copied to bytes: a data set near the cap would cost twice the cap


@dataclass(frozen=True)
class CheckedDataSet:
    """A data set fit to acknowledge: its bytes ready to parse (inflated if deflated), and where the top-level
    elements asked for sit in them, by tag: (VR as written, b"" in implicit VR; value offset; value length)."""

    data: bytes | bytearray | memoryview
    elements: dict[int, tuple[bytes, int, int]]


def checked_dataset(
    raw: bytes | memoryview, transfer_syntax_uid: str, max_inflated_bytes: int, locate: frozenset[int] = frozenset(), until: int = 0
) -> CheckedDataSet:
    """The data set ready to parse; raises Refused if it must not be acknowledged.

    The walk notes where the top-level elements tagged in `locate` sit, among those before the first tag beyond
    `until` (what a parse that stops there reads): the identifiers cost no second walk."""
    data = inflate(raw, max_inflated_bytes) if transfer_syntax_uid == DeflatedExplicitVRLittleEndian else raw
    elements: dict[int, tuple[bytes, int, int]] = {}
    problem = dataset_problem(data, transfer_syntax_uid, _Locator(locate, until, elements))
    if problem is not None:
        raise Refused(problem)
    return CheckedDataSet(data, elements)


def same_uid(in_dataset: str, in_command: str) -> bool:
    """Does the request's UID name the data set's? Equal, or the data set's cut at 64 characters.

    dcmtk's storescu cuts a longer UID to 64 characters in the command it sends, while the data set keeps it whole:
    the data set's full value is the one indexed.
    """
    return in_dataset == in_command or (len(in_command) == 64 and in_dataset.startswith(in_command))


def part10_dataset(data: bytes | memoryview) -> memoryview:
    """The encoded data set of a Part 10 file: what follows the preamble, "DICM" and the group 0002 elements."""
    view, pos = memoryview(data), 132
    while len(view) >= pos + 8 and view[pos : pos + 2] == b"\x02\x00":  # file meta: always explicit VR little endian
        if bytes(view[pos + 4 : pos + 6]) in _LONG_VRS and len(view) >= pos + 12:
            pos += 12 + struct.unpack_from("<L", view, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", view, pos + 6)[0]
    return view[pos:]


@dataclass
class _Locator:
    """Which top-level elements the walk notes (`tags`, up to the first tag beyond `until`), and where (`found`)."""

    tags: frozenset[int]
    until: int
    found: dict[int, tuple[bytes, int, int]]


def dataset_problem(data: bytes | bytearray | memoryview, transfer_syntax_uid: str, locator: _Locator | None = None) -> Problem | None:
    """None if the (inflated) data set decodes in the transfer syntax and its pixels fit; else why not."""
    syntax = UID(transfer_syntax_uid)
    if not syntax.is_transfer_syntax:
        return Problem(UNDECODABLE, f"unknown transfer syntax {transfer_syntax_uid}")
    walker = _Walker(data, not syntax.is_implicit_VR, syntax.is_little_endian, locator or _Locator(frozenset(), 0, {}))
    try:
        if not walker.explicit and len(data) >= 8 and bytes(data[4:6]) in _VRS:
            raise _Bad(f"explicit VR encoding in an implicit VR transfer syntax ({syntax.name})")
        walker.walk(0, len(data), 0)
    except _Bad as bad:
        return Problem(UNDECODABLE, str(bad))
    return _pixel_problem(walker, syntax)


def _pixel_problem(walker: _Walker, syntax: UID) -> Problem | None:
    if walker.pixel_length is None:
        if _ROWS in walker.image and not walker.other_pixels:
            return Problem(NOT_MATCHING, "Rows and Columns given but no Pixel Data")
        return None
    if syntax.is_encapsulated:
        if walker.pixel_length != _UNDEFINED:
            return Problem(UNDECODABLE, f"native Pixel Data in {syntax.name} (encapsulated fragments expected)")
        return None
    if walker.pixel_length == _UNDEFINED:
        return Problem(UNDECODABLE, f"encapsulated Pixel Data in {syntax.name} (native pixels expected)")
    image = walker.image
    if not {_ROWS, _COLUMNS, _BITS} <= image.keys():
        return Problem(NOT_MATCHING, "Pixel Data without Rows, Columns or Bits Allocated")
    bits, frames = image[_BITS], image.get(_FRAMES, 1)
    if bits != 1 and (bits == 0 or bits % 8):
        return Problem(NOT_MATCHING, f"Bits Allocated {bits} is neither 1 nor a multiple of 8")
    pixels = image[_ROWS] * image[_COLUMNS] * image.get(_SAMPLES, 1) * frames
    expected = (pixels + 7) // 8 if bits == 1 else pixels * (bits // 8)
    if walker.pixel_length < expected:
        return Problem(
            NOT_MATCHING,
            f"Pixel Data holds {walker.pixel_length} bytes, {expected} expected "
            f"({image[_ROWS]}x{image[_COLUMNS]}x{image.get(_SAMPLES, 1)} samples x {frames} frame(s) x {bits} bits)",
        )
    return None


class _Walker:
    """Walks element headers; records the image attributes and Pixel Data length of the top-level data set."""

    def __init__(self, data: bytes | bytearray | memoryview, explicit: bool, little: bool, locator: _Locator) -> None:
        self.data = data
        self.locate, self.locate_until, self.located = locator.tags, locator.until, locator.found
        self.explicit = explicit
        self.order = order = "<" if little else ">"
        self._explicit_head = struct.Struct(order + "HH2sH").unpack_from
        self._implicit_head = struct.Struct(order + "HHL").unpack_from
        self._long_length = struct.Struct(order + "L").unpack_from
        self.image: dict[int, int] = {}
        self.pixel_length: int | None = None
        self.other_pixels = False  # Float or Double Float Pixel Data stands in for Pixel Data

    def _tag_length(self, pos: int) -> tuple[int, int]:
        group, element, length = struct.unpack_from(self.order + "HHL", self.data, pos)
        return group << 16 | element, length

    def walk(self, pos: int, end: int, depth: int, explicit: bool | None = None, stop_at: int | None = None) -> int:
        """Walk the elements in [pos, end) (or up to `stop_at`, an item delimiter); return where the walk ended."""
        if depth > _MAX_DEPTH:
            raise _Bad(f"sequences nested deeper than {_MAX_DEPTH} levels")
        explicit = self.explicit if explicit is None else explicit
        data, explicit_head, implicit_head, long_length = self.data, self._explicit_head, self._implicit_head, self._long_length
        while pos < end:
            if pos + 8 > end:
                raise _Bad(f"truncated element header at byte {pos}")
            if explicit:
                group, element, vr, length = explicit_head(data, pos)
                tag = group << 16 | element
                if vr in _SHORT_VRS:
                    pos += 8
                elif vr in _LONG_VRS:
                    if pos + 12 > end:
                        raise _Bad(f"truncated element header at byte {pos}")
                    (length,) = long_length(data, pos + 8)
                    pos += 12
                elif tag == stop_at:
                    return pos + 8
                else:
                    raise _Bad(f"invalid VR 0x{vr.hex().upper()} for ({group:04X},{element:04X}) at byte {pos}")
            else:
                group, element, length = implicit_head(data, pos)
                tag, vr = group << 16 | element, b""
                pos += 8
                if tag == stop_at:
                    return pos
            if group == 0xFFFE:
                raise _Bad(f"unexpected delimiter ({group:04X},{element:04X}) at byte {pos}")
            if depth == 0 and tag in self.locate and tag <= self.locate_until:
                self.located[tag] = (vr, pos, length)
            if length == _UNDEFINED:
                if tag == PIXEL_DATA:
                    pos = self._fragments(pos, end)
                elif not explicit or vr in (b"SQ", b"UN"):
                    pos = self._items(pos, end, depth + 1, explicit and vr == b"SQ")
                else:
                    raise _Bad(f"undefined length for ({group:04X},{element:04X}) {vr.decode('ascii', 'replace')}")
            else:
                if pos + length > end:
                    raise _Bad(f"({group:04X},{element:04X}) claims {length} bytes, {end - pos} present (truncated?)")
                if vr == b"SQ":
                    self._items(pos, pos + length, depth + 1, True)
                elif depth == 0 and tag in _IMAGE_TAGS:
                    self.image[tag] = self._image_value(tag, pos, length)
                pos += length
            if depth == 0:
                if tag > self.locate_until:
                    self.locate_until = -1  # a parse stopping there reads nothing after it
                if tag == PIXEL_DATA:
                    self.pixel_length = length
                elif tag in _FLOAT_PIXEL_DATA:
                    self.other_pixels = True
        if stop_at is not None:
            raise _Bad(f"item not delimited before byte {end}")
        return pos

    def _items(self, pos: int, end: int, depth: int, explicit: bool) -> int:
        """Walk the items of a sequence in [pos, end); for an undefined-length sequence `end` is the data set's end."""
        while pos < end:
            if pos + 8 > end:
                raise _Bad(f"truncated item header at byte {pos}")
            tag, length = self._tag_length(pos)
            pos += 8
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM:
                raise _Bad(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) where a sequence item was expected at byte {pos - 8}")
            if length == _UNDEFINED:
                pos = self.walk(pos, end, depth, explicit, stop_at=_ITEM_END)
            elif pos + length > end:
                raise _Bad(f"sequence item claims {length} bytes, {end - pos} present (truncated?)")
            else:
                self.walk(pos, pos + length, depth, explicit)
                pos += length
        return pos

    def _fragments(self, pos: int, end: int) -> int:
        """Walk encapsulated Pixel Data: the offset table item, fragments, the sequence delimiter."""
        items = 0
        while pos + 8 <= end:
            tag, length = self._tag_length(pos)
            pos += 8
            if tag == _SEQUENCE_END:
                if items < 2:
                    raise _Bad("encapsulated Pixel Data without a fragment")
                return pos
            if tag != _ITEM or length == _UNDEFINED:
                raise _Bad(f"invalid item in encapsulated Pixel Data at byte {pos - 8}")
            if pos + length > end:
                raise _Bad(f"Pixel Data fragment claims {length} bytes, {end - pos} present (truncated?)")
            pos += length
            items += 1
        raise _Bad("encapsulated Pixel Data is truncated (no sequence delimiter)")

    def _image_value(self, tag: int, pos: int, length: int) -> int:
        raw = bytes(self.data[pos : pos + length])
        if tag == _FRAMES:  # IS: a decimal string
            text = raw.decode("ascii", "replace").strip(" \0")
            try:
                frames = int(text) if text else 1
            except ValueError:
                raise _Bad(f"Number of Frames '{text[:16].replace(chr(92), '/')}' is not a number") from None
            if frames < 1:
                raise _Bad(f"Number of Frames {frames} is not positive")
            return frames
        if length != 2:
            raise _Bad(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) has {length} bytes, 2 expected (US)")
        return struct.unpack(self.order + "H", raw)[0]
