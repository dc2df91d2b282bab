"""Deterministic UIDs for the objects the node derives from a source series.

A job that is re-run (after a crash, a requeue or a superseding upload of the
same series) must produce the same Series and SOP Instance UIDs, so that the
PACS replaces its copy instead of collecting duplicates.  A new algorithm
version, on the other hand, is a different result and must not overwrite the
old one.  Each UID is therefore a name-based (SHA-1, version 5) UUID of the
source SeriesInstanceUID, the algorithm's name and version and the kind of
object, written as a "2.25." UID (DICOM PS3.5 B.2).  (pydicom's generate_uid
ignores its entropy sources when no prefix is given, so it cannot do this.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

# Fixed namespace of dicom-node's name-based UUIDs; changing it would change every derived UID.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicom-node:derived-uids")


MANUFACTURER = "dicom-node"  # the Manufacturer of every object the node creates


@dataclass(frozen=True)
class AlgorithmId:
    """The producer of a result; part of every derived UID and named in the objects."""

    name: str
    version: str


def _uuid_uid(*parts: str) -> str:
    # A unit separator keeps ("a", "bc") and ("ab", "c") apart.
    return f"2.25.{uuid.uuid5(_NAMESPACE, chr(0x1F).join(parts)).int}"


def derived_uid(source_series_uid: str, algorithm: AlgorithmId, *kind: str | int) -> str:
    """A UID that depends only on the source series, the algorithm and the object kind.

    `kind` names the object, e.g. ("seg", "series"), ("sr", "instance") or
    ("sc", "instance", 3); distinct kinds give distinct UIDs.
    """
    if not kind:
        raise ValueError("a derived UID needs an object kind, e.g. ('seg', 'series')")
    return _uuid_uid("derived", source_series_uid, algorithm.name, algorithm.version, *map(str, kind))


def device_uid(algorithm: AlgorithmId) -> str:
    """The UID of the node as the SR's device observer: one per algorithm name and version."""
    return _uuid_uid("device", algorithm.name, algorithm.version)


def derived_frame_of_reference(source_series_uid: str) -> str:
    """The Frame of Reference UID given to results of a source series that has none.

    It depends on the source series only, so every result of that series (SEG,
    SR, key images, any algorithm version) shares one frame of reference.
    """
    return _uuid_uid("frame-of-reference", source_series_uid)
