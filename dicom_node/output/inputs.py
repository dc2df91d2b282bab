"""What a result is made of besides its pixels: the exact input instances, signs that they may be incomplete, and
the earlier result it replaces.

The digest of the input makes the result's UIDs follow its content (`uids.derived_uid`); the completeness hints
and the predecessor are said in the SR, on the summary page and in the JSON, so a reader of any of them knows
whether the numbers may rest on a half-sent series and which earlier result they replace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset

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


def file_digest(path: Path) -> str:
    """SHA-256 of a stored instance's file, as hex."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def stored_input_digest(instances: Iterable[tuple[str, Path]]) -> str:
    """`input_digest` of (SOP Instance UID, stored file) pairs, hashing each file.

    Computed at job time from the stored files rather than on the receive path, where every microsecond is paid per
    image: the pipeline reads the same files right after, so they are in the page cache (P001's 148 files: ~30 ms).
    """
    return input_digest((uid, file_digest(path)) for uid, path in instances)


@dataclass(frozen=True)
class Completeness:
    """Why the input may be incomplete, in words; empty: no sign of it."""

    hints: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [f"Input possibly incomplete: {hint}" for hint in self.hints]


def completeness(volume: CtVolume, headers: Sequence[Dataset], job_input: JobInput) -> Completeness:
    """The signs of an incomplete series: what the node knew (`job_input.incomplete`), fewer instances than the
    sender's Number of Series Related Instances, gaps in InstanceNumber, and slice positions the loader filled in.

    `headers` are the headers of the slices the volume was built from (localizers left out).
    """
    hints = list(job_input.incomplete)
    received = job_input.instance_count or len(headers)
    announced = {n for h in headers if (n := _whole_number(h, "NumberOfSeriesRelatedInstances")) is not None}
    if announced and max(announced) > received:
        hints.append(f"{received} of the {max(announced)} instances the sender announced (Number of Series Related Instances)")
    numbers = sorted({n for h in headers if (n := _whole_number(h, "InstanceNumber")) is not None})
    if len(numbers) == len(headers) and numbers and numbers[-1] - numbers[0] + 1 > len(numbers):
        missing = numbers[-1] - numbers[0] + 1 - len(numbers)
        hints.append(f"{missing} instance number(s) missing between {numbers[0]} and {numbers[-1]}")
    filled = sum(path is None for path in volume.source_files)
    if filled:
        hints.append(f"{filled} slice position(s) missing, filled in by interpolation")
    return Completeness(hints)


def _whole_number(header: Dataset, keyword: str) -> int | None:
    """An IS/US value as an integer; None when absent or not a number (a sender's odd value is no hint)."""
    try:
        value = header.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None
