"""Broken and hostile data sets, built byte by byte, each with the answer the node must give.

Every case starts from a small valid CT image (16 x 16, 16 bits, fresh UIDs)
and breaks one thing, the way a faulty modality, an odd archive or an attacker
would. `Send.status` is the C-STORE status expected (None: the association
is aborted, no answer); `stored` says whether the instance must then be in
the index and on disk, byte for byte as sent.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLosslessSV1,
    generate_uid,
)
from pynetdicom.sop_class import CTImageStorage

ELE, ILE, JPEG, DEFLATED = str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian), str(JPEGLosslessSV1), str(DeflatedExplicitVRLittleEndian)
SUCCESS, OUT_OF_RESOURCES, NOT_MATCHING, UNDECODABLE, MISSING_UIDS = 0x0000, 0xA700, 0xA900, 0xC210, 0xC211
PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
DEFLATE_CAP_MB = 16  # the module's node runs with dicom.max_inflated_mb = 16


def long_uid(prefix_length: int = 64, tail: str = "") -> str:
    """A 75-character UID that shares its first `prefix_length` characters with every other one built alike."""
    base = ("1.2.826.0.1.3680043.10.999." + "1" * 80)[:prefix_length]
    return (base + tail + "9" * 75)[:75]


def image(rows: int = 16, columns: int = 16, bits: int = 16, samples: int = 1, frames: int | None = None, pixels: bytes | None = None, **attrs: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = "20260101"
    ds.Modality = "CT"
    ds.PatientName = "HOSTILE^CORPUS"
    ds.PatientID = "HOSTILE-1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.999.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.1.1"
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    nbytes = (rows * columns * samples * (frames or 1) * bits + 7) // 8
    ds.PixelData = pixels if pixels is not None else bytes(range(256)) * (nbytes // 256) + bytes(nbytes % 256) + bytes(nbytes % 2)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def encode(ds: Dataset, implicit: bool = False, little: bool = True) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = little, implicit
    write_dataset(buffer, ds)
    return buffer.getvalue()


def explicit_element(group: int, element: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHL", group, element, vr, 0, size) + value
    return struct.pack("<HH2sH", group, element, vr, size) + value


def header_before_pixels(ds: Dataset) -> bytes:
    """The encoded (explicit VR LE) elements of `ds` before Pixel Data."""
    raw = encode(ds)
    return raw[: raw.index(PIXEL_TAG_LE + b"O")]


def encapsulated(ds: Dataset, fragments: list[bytes], delimiter: bool = True, bot: bool = True) -> bytes:
    body = header_before_pixels(ds) + explicit_element(0x7FE0, 0x0010, b"OB", b"", 0xFFFFFFFF)
    items = ([b""] if bot else []) + fragments
    body += b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(item)) + item for item in items)
    return body + (struct.pack("<HHL", 0xFFFE, 0xE0DD, 0) if delimiter else b"")


def nested_sequences(depth: int) -> bytes:
    """(0008,1140) Referenced Image Sequence nested `depth` times, undefined lengths."""
    inner = explicit_element(0x0008, 0x0100, b"SH", b"CODE01")
    for _ in range(depth):
        item = struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + inner + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        inner = explicit_element(0x0008, 0x1140, b"SQ", b"", 0xFFFFFFFF) + item + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return inner


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def deflate_bomb(inflated_mib: int) -> bytes:
    """A valid explicit VR header, then an OB element of `inflated_mib` MiB of zeros, deflated (about 1/1000 of it)."""
    head = header_before_pixels(image()) + explicit_element(0x0009, 0x1010, b"OB", b"", inflated_mib << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [compressor.compress(head)]
    zeros = bytes(1 << 20)
    chunks += [compressor.compress(zeros) for _ in range(inflated_mib)]
    return b"".join(chunks) + compressor.flush()


@dataclass
class Send:
    """One C-STORE: the encoded data set, its transfer syntax, the request's UIDs, and the expected answer."""

    raw: bytes
    syntax: str
    sop_instance_uid: str
    status: int | None
    stored: bool = False
    sop_class_uid: str = CTImageStorage
    command: dict[str, object | None] = field(default_factory=dict)  # command fields to override (None: left out)


@dataclass
class Case:
    name: str
    build: Callable[[], list[Send]]
    verify: Callable[[list[Send]], list[tuple]] | None = None  # (SQL, expected first row, *parameters) to check


def one(ds: Dataset, status: int, syntax: str = ELE, raw: bytes | None = None, stored: bool | None = None, **kw: object) -> Callable[[], list[Send]]:
    def build() -> list[Send]:
        data = encode(ds) if raw is None else raw
        return [Send(data, syntax, str(ds.SOPInstanceUID), status, status == SUCCESS if stored is None else stored, **kw)]  # type: ignore[arg-type]

    return build


def lazy(make: Callable[[], tuple[Dataset, bytes]], status: int, syntax: str = ELE, **kw: object) -> Callable[[], list[Send]]:
    """A case whose bytes are derived from a fresh image at build time."""

    def build() -> list[Send]:
        ds, raw = make()
        return [Send(raw, syntax, str(ds.SOPInstanceUID), status, status == SUCCESS, **kw)]  # type: ignore[arg-type]

    return build


def with_bytes(transform: Callable[[Dataset, bytes], bytes], **image_kw: object) -> Callable[[], tuple[Dataset, bytes]]:
    def make() -> tuple[Dataset, bytes]:
        ds = image(**image_kw)  # type: ignore[arg-type]
        return ds, transform(ds, encode(ds))

    return make


def pair(name: str, keyword: str, table: str, column: str, value: Callable[[str], str]) -> Case:
    """Two valid instances whose `keyword` values differ only after character 64: both kept, apart."""
    values = [value("1"), value("2")]
    assert values[0][:64] == values[1][:64] and values[0] != values[1]

    def build() -> list[Send]:
        sends = []
        for text in values:
            ds = image(StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), PatientID=generate_uid())
            setattr(ds, keyword, text)
            sends.append(Send(encode(ds), ELE, str(ds.SOPInstanceUID), SUCCESS, True))
        return sends

    sql = f"SELECT count(DISTINCT {column}) FROM {table} WHERE {column} IN (?, ?)"
    return Case(name, build, lambda sends: [(sql, (2,), *values)])


def _truncate(cut: int) -> Callable[[Dataset, bytes], bytes]:
    return lambda ds, raw: raw[:cut] if cut > 0 else raw[:cut]


def _pixel_claim(claim: int, present: int) -> Callable[[Dataset, bytes], bytes]:
    return lambda ds, raw: header_before_pixels(ds) + explicit_element(0x7FE0, 0x0010, b"OW", bytes(present), claim)


def _replace_vr(old: bytes, new: bytes) -> Callable[[Dataset, bytes], bytes]:
    return lambda ds, raw: raw.replace(old, new, 1)


def _rows_in_4_bytes(ds: Dataset, raw: bytes) -> bytes:
    rows = explicit_element(0x0028, 0x0010, b"US", struct.pack("<H", 16))
    return raw.replace(rows, explicit_element(0x0028, 0x0010, b"US", struct.pack("<L", 16)))


def _frames_text(text: bytes) -> Callable[[Dataset, bytes], bytes]:
    def transform(ds: Dataset, raw: bytes) -> bytes:
        frames = explicit_element(0x0028, 0x0008, b"IS", b"1 ")
        return raw.replace(frames, explicit_element(0x0028, 0x0008, b"IS", text))

    return transform


def _sequence_then_pixels(sequence: bytes) -> Callable[[Dataset, bytes], bytes]:
    def transform(ds: Dataset, raw: bytes) -> bytes:
        head = header_before_pixels(ds)
        at = head.index(b"\x10\x00\x10\x00PN")  # (0010,0010) Patient's Name: the sequence goes before it, in tag order
        return head[:at] + sequence + head[at:] + raw[len(head) :]

    return transform


def _item(length: int, content: bytes) -> bytes:
    return struct.pack("<HHL", 0xFFFE, 0xE000, length) + content


BROKEN_SQ_UNDELIMITED = explicit_element(0x0008, 0x1140, b"SQ", b"", 0xFFFFFFFF) + _item(0xFFFFFFFF, explicit_element(0x0008, 0x0100, b"SH", b"CODE01"))
ITEM_TOO_LONG = explicit_element(0x0008, 0x1140, b"SQ", _item(4000, b"\x08\x00\x00\x01SH\x02\x00AB"))


def _deflated_ok() -> tuple[Dataset, bytes]:
    ds = image()
    return ds, deflate(encode(ds))


def _deflated_truncated() -> tuple[Dataset, bytes]:
    ds = image()
    return ds, deflate(encode(ds))[:-40]


def _random_bytes() -> tuple[Dataset, bytes]:
    ds = image()
    return ds, os.urandom(3000)


def _without(keyword: str) -> Dataset:
    ds = image()
    delattr(ds, keyword)
    return ds


def _with_uid_of_length(length: int) -> Dataset:
    ds = image()
    ds.SOPInstanceUID = ("1.2.826.0.1.3680043.10.999.7." + "1" * length)[:length]
    return ds


def cases() -> list[Case]:
    ct = image
    return [
        # truncation and lengths that do not fit
        Case("truncated inside Pixel Data", lazy(with_bytes(_truncate(-100)), UNDECODABLE)),
        Case("truncated in the header", lazy(with_bytes(_truncate(300)), UNDECODABLE)),
        Case("truncated inside an element header", lazy(with_bytes(lambda ds, raw: header_before_pixels(ds) + PIXEL_TAG_LE + b"O"), UNDECODABLE)),
        Case("Pixel Data claims 0xFFFFFFF0 bytes, 1000 present", lazy(with_bytes(_pixel_claim(0xFFFFFFF0, 1000)), UNDECODABLE)),
        Case("Pixel Data claims 1 byte more than present", lazy(with_bytes(_pixel_claim(513, 512)), UNDECODABLE)),
        Case("element after Pixel Data claims more than present", lazy(with_bytes(lambda ds, raw: raw + explicit_element(0x7FE1, 0x0010, b"OB", b"\0" * 8, 80)), UNDECODABLE)),
        # encodings other than the negotiated one
        Case("explicit VR body in an implicit VR context", lazy(with_bytes(lambda ds, raw: raw), UNDECODABLE, syntax=ILE)),
        Case("implicit VR body in an explicit VR context", lazy(with_bytes(lambda ds, raw: encode(ds, implicit=True)), UNDECODABLE)),
        Case("big endian body in a little endian context", lazy(with_bytes(lambda ds, raw: encode(ds, little=False)), UNDECODABLE)),
        Case("little endian body in a big endian context", lazy(with_bytes(lambda ds, raw: raw), UNDECODABLE, syntax=str(ExplicitVRBigEndian))),
        Case("native pixels in a JPEG Lossless context", lazy(with_bytes(lambda ds, raw: raw), UNDECODABLE, syntax=JPEG)),
        Case("encapsulated pixels in a native context", lazy(with_bytes(lambda ds, raw: encapsulated(ds, [b"\xff\xd8 jpeg \xff\xd9"])), UNDECODABLE)),
        Case("encapsulated pixels without their delimiter", lazy(with_bytes(lambda ds, raw: encapsulated(ds, [b"\xff\xd8\xff\xd9"], delimiter=False)), UNDECODABLE, syntax=JPEG)),
        Case("encapsulated fragment beyond the end", lazy(with_bytes(lambda ds, raw: encapsulated(ds, [b"\xff\xd8\xff\xd9"], delimiter=False)[:-2]), UNDECODABLE, syntax=JPEG)),
        Case("encapsulated pixels without a fragment", lazy(with_bytes(lambda ds, raw: encapsulated(ds, [])), UNDECODABLE, syntax=JPEG)),
        Case("encapsulated pixels in a JPEG context", lazy(with_bytes(lambda ds, raw: encapsulated(ds, [b"\xff\xd8 jpeg \xff\xd9"])), SUCCESS, syntax=JPEG)),
        # malformed elements and sequences
        Case("invalid VR", lazy(with_bytes(_replace_vr(b"CS", b"ZZ")), UNDECODABLE)),
        Case("undefined length on a non-sequence element", lazy(with_bytes(lambda ds, raw: header_before_pixels(ds) + explicit_element(0x0009, 0x0010, b"OB", b"", 0xFFFFFFFF) + raw[len(header_before_pixels(ds)) :]), UNDECODABLE)),
        Case("sequence item never delimited", lazy(with_bytes(_sequence_then_pixels(BROKEN_SQ_UNDELIMITED)), UNDECODABLE)),
        Case("sequence item longer than its sequence", lazy(with_bytes(_sequence_then_pixels(ITEM_TOO_LONG)), UNDECODABLE)),
        Case("sequences nested 40 deep", lazy(with_bytes(_sequence_then_pixels(nested_sequences(40))), UNDECODABLE)),
        Case("sequences nested 8 deep", lazy(with_bytes(_sequence_then_pixels(nested_sequences(8))), SUCCESS)),
        Case("random bytes", lazy(_random_bytes, UNDECODABLE)),
        Case("a PDF sent as a data set", lazy(lambda: (image(), b"%PDF-1.4 a report sent to the wrong place\n" * 64), UNDECODABLE)),
        Case("C-STORE without a data set", lazy(lambda: (image(), b""), UNDECODABLE)),
        Case("Number of Frames not a number", lazy(with_bytes(_frames_text(b"AB"), frames=1), UNDECODABLE)),
        Case("Rows encoded in 4 bytes", lazy(with_bytes(_rows_in_4_bytes), UNDECODABLE)),
        # deflate
        Case("deflated data set", lazy(_deflated_ok, SUCCESS, syntax=DEFLATED)),
        Case("deflated stream truncated", lazy(_deflated_truncated, UNDECODABLE, syntax=DEFLATED)),
        Case("not deflate data in a deflated context", lazy(_random_bytes, UNDECODABLE, syntax=DEFLATED)),
        Case(f"deflate bomb (4 x the {DEFLATE_CAP_MB} MiB cap)", lazy(lambda: (image(), deflate_bomb(4 * DEFLATE_CAP_MB)), OUT_OF_RESOURCES, syntax=DEFLATED)),
        # pixels that do not fit the image attributes
        Case("Pixel Data shorter than Rows x Columns x 2", one(ct(pixels=bytes(500)), NOT_MATCHING)),
        Case("three frames announced, two sent", one(ct(frames=3, pixels=bytes(2 * 512)), NOT_MATCHING)),
        Case("RGB announced, one sample sent", one(ct(samples=3, bits=8, pixels=bytes(256)), NOT_MATCHING)),
        Case("1 bit per pixel, one byte short", one(ct(rows=15, columns=15, bits=1, pixels=bytes(28)), NOT_MATCHING)),
        Case("1 bit per pixel, packed and padded", one(ct(rows=15, columns=15, bits=1), SUCCESS)),
        Case("8 bits, odd size padded to even", one(ct(rows=15, columns=15, bits=8), SUCCESS)),
        Case("Pixel Data longer than needed (trailing padding)", one(ct(pixels=bytes(600)), SUCCESS)),
        Case("Bits Allocated 12", one(ct(bits=8, BitsAllocated=12, BitsStored=12, HighBit=11), NOT_MATCHING)),
        Case("Pixel Data without Rows", one(_without("Rows"), NOT_MATCHING)),
        Case("Rows and Columns without Pixel Data", one(_without("PixelData"), NOT_MATCHING)),
        # identifiers
        pair("SOP Instance UIDs differing after character 64", "SOPInstanceUID", "instance", "sop_instance_uid", lambda tail: long_uid(64, tail)),
        pair("Study Instance UIDs differing after character 64", "StudyInstanceUID", "study", "study_instance_uid", lambda tail: long_uid(64, tail)),
        pair("Series Instance UIDs differing after character 64", "SeriesInstanceUID", "series", "series_instance_uid", lambda tail: long_uid(64, tail)),
        pair("Patient IDs differing after character 64", "PatientID", "patient", "patient_id", lambda tail: "P" * 64 + tail),
        Case("UID with letters, as some archives write them", one(ct(SOPInstanceUID="1.3.12.2.1107.5.1.4.ABC.30000020030507333373200012575"), SUCCESS)),
        Case("SOP Instance UID of 600 characters", one(_with_uid_of_length(600), NOT_MATCHING)),
        Case("SOP Instance UID missing from the data set", lambda: [Send(encode(_without("SOPInstanceUID")), ELE, generate_uid(), MISSING_UIDS)]),
        Case("data set's SOP Instance UID differs from the request's", lambda: [Send(encode(ct()), ELE, generate_uid(), NOT_MATCHING)]),
        # the command set
        Case("command without Affected SOP Instance UID", lambda: [Send(encode(ct()), ELE, "", MISSING_UIDS, command={"AffectedSOPInstanceUID": None})]),
        Case("command without Affected SOP Class UID", lambda: [Send(encode(ct()), ELE, "", MISSING_UIDS, command={"AffectedSOPClassUID": None, "AffectedSOPInstanceUID": None})]),
        Case("command without Message ID", lambda: [Send(encode(ct()), ELE, "", None, command={"MessageID": None})]),
    ]
