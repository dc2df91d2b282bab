"""What a result is made of besides its pixels: the exact input instances, signs that they may be incomplete, and
the earlier result it replaces.

The digest of the input makes the result's UIDs follow its content (`uids.derived_uid`); the completeness hints
and the predecessor are said in the SR, on the summary page and in the JSON, so a reader of any of them knows
whether the numbers may rest on a half-sent series and which earlier result they replace.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from dicom_node.output.uids import input_digest
from dicom_node.pipeline.volume import CtVolume


@dataclass(frozen=True)
class Predecessor:
    """The SR of the earlier result of the same series that this one replaces, and when that result was made."""

    sr_path: Path
    created: datetime

    @property
    def note(self) -> str:
        return f"Replaces the result of {self.created:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class JobInput:
    """A job's input as the index knows it.

    `digest`: `input_digest` of the series' stored instances ('' for results not made from the index, e.g. in
    tests: the UIDs then depend on the series alone); `instance_count`: how many instances the series has (0:
    unknown); `incomplete`: what the node knows about its completeness before looking at the images (it was
    processed after the grace period without a normal release); `predecessor`: the result it replaces.
    """

    digest: str = ""
    instance_count: int = 0
    incomplete: tuple[str, ...] = ()
    predecessor: Predecessor | None = None


def content_digest(path: Path) -> str:
    """SHA-256 of a stored instance's attribute values, as hex, however the data set was encoded.

    The same instance reaches the node as different bytes depending on who sent it and how: file meta written by
    the node or by a STOW-RS client, sequences of defined or undefined length, explicit or implicit VR. Those are
    the same input and must give the same result UIDs (two nodes given one study by storescu and by STOW-RS export
    the same objects), so the digest covers each element's tag and value bytes (little endian, text without its
    padding; sequences item by item), not the file. Values are hashed as read, not decoded: decoding every element
    took 0.8 s for P001, its raw values 0.1 s. Pixel data transcoded to another compression (or a big endian data
    set) is other bytes: new UIDs.
    """
    digest = hashlib.sha256()
    _feed(digest, dcmread(path))
    return digest.hexdigest()


def _feed(digest: Any, dataset: Dataset) -> None:
    for tag in sorted(dataset.keys()):
        if tag.group == 0x0002 or tag.element == 0:  # file meta and group lengths: encoding, not content
            continue
        element = dataset.get_item(tag)
        vr = element.VR or _dictionary_vr(tag)  # implicit VR: the dictionary's
        digest.update(int(tag).to_bytes(4, "little"))
        if vr in (None, "SQ") or not isinstance(element.value, (bytes, type(None))):
            value = dataset[tag].value  # decoded: a sequence, an unknown private element, one pydicom read already
            if isinstance(value, DicomSequence):
                for item in value:
                    digest.update(b"\x1d")
                    _feed(digest, item)
            else:
                digest.update(_value_bytes(dataset[tag].VR, value))
        else:
            raw = element.value or b""
            digest.update(raw.rstrip(b" \0") if vr in _TEXT_VRS else raw)
        digest.update(b"\x1e")


_TEXT_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"))


def _value_bytes(vr: str, value: Any) -> bytes:
    """A value pydicom has decoded (it decodes some while reading, e.g. Pixel Representation) as the bytes a raw one
    is hashed as: numbers in little endian, text with several values joined by backslashes, without padding."""
    if isinstance(value, bytes):
        return value
    values = list(value) if isinstance(value, MultiValue) else [value]
    if vr in _PACKED:
        return struct.pack(f"<{len(values)}{_PACKED[vr]}", *values)
    return "\\".join(map(str, values)).encode("utf-8", "surrogateescape")


_PACKED = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}


def _dictionary_vr(tag: Any) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def stored_input_digest(instances: Iterable[tuple[str, Path]]) -> str:
    """`input_digest` of (SOP Instance UID, stored file) pairs, from each file's `content_digest`.

    Computed at job time from the stored files rather than on the receive path, where every microsecond is paid per
    image; the pipeline reads the same files right after, so they are in the page cache.
    """
    return input_digest((uid, content_digest(path)) for uid, path in instances)


@dataclass(frozen=True)
class Completeness:
    """Why the input may be incomplete, in words; empty: no sign of it."""

    hints: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """One note for the SR and the summary page (whose lines are few), empty when there is no sign."""
        return [f"Input possibly incomplete: {'; '.join(self.hints)}"] if self.hints else []


def completeness(volume: CtVolume, headers: Sequence[Dataset], job_input: JobInput) -> Completeness:
    """The signs of an incomplete series: what the node knew (`job_input.incomplete`), fewer instances than the
    sender's Number of Series Related Instances, gaps in InstanceNumber, and slice positions the loader filled in.

    `headers` are the headers of the slices the volume was built from (localizers left out).
    """
    hints = list(job_input.incomplete)
    received = job_input.instance_count or len(headers)
    announced = {n for h in headers if (n := _whole_number(h, "NumberOfSeriesRelatedInstances")) is not None}
    if announced and max(announced) > received:
        hints.append(f"{received} of {max(announced)} announced instances")
    filled = sum(path is None for path in volume.source_files)
    numbers = sorted({n for h in headers if (n := _whole_number(h, "InstanceNumber")) is not None})
    if filled:
        hints.append(f"{filled} slice(s) filled in by interpolation")
    elif len(numbers) == len(headers) and numbers and numbers[-1] - numbers[0] + 1 > len(numbers):
        # A gap in the numbers where the positions have none (the slices missing at a gap are that gap's numbers).
        hints.append(f"instance numbers {numbers[0]}-{numbers[-1]} lack {numbers[-1] - numbers[0] + 1 - len(numbers)}")
    return Completeness(hints)


def _whole_number(header: Dataset, keyword: str) -> int | None:
    """An IS/US value as an integer; None when absent or not a number (a sender's odd value is no hint)."""
    try:
        value = header.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def lineage(job_input: JobInput, complete: Completeness, previous: Dataset | None) -> dict[str, Any]:
    """The JSON's "input": what the result was made of and which earlier result it replaces."""
    replaces = None
    if previous is not None and job_input.predecessor is not None:
        replaces = {"sop_instance_uid": str(previous.SOPInstanceUID), "created": f"{job_input.predecessor.created:%Y-%m-%dT%H:%M:%S}Z"}
    return {
        "digest": job_input.digest,
        "instances": job_input.instance_count or None,
        "possibly_incomplete": bool(complete.hints),
        "incomplete_hints": complete.hints,
        "replaces": replaces,
    }
