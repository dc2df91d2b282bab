"""Deterministic UIDs for the objects the node derives from a source series.

A job that is re-run (after a crash, a requeue or a superseding upload of the
same series) must produce the same Series and SOP Instance UIDs, so that the
PACS replaces its copy instead of collecting duplicates.  A new algorithm
version, on the other hand, is a different result and must not overwrite the
old one.  Each UID is therefore a hash of the source SeriesInstanceUID, the
algorithm's name and version and the kind of object, turned into a "2.25."
UID (an integer derived from a hash, per DICOM PS3.5 B.2) by pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import generate_uid


@dataclass(frozen=True)
class AlgorithmId:
    """The producer of a result; part of every derived UID and named in the objects."""

    name: str
    version: str


def derived_uid(source_series_uid: str, algorithm: AlgorithmId, *kind: str | int) -> str:
    """A UID that depends only on the source series, the algorithm and the object kind.

    `kind` names the object, e.g. ("seg", "series"), ("sr", "instance") or
    ("sc", "instance", 3); distinct kinds give distinct UIDs.
    """
    if not kind:
        raise ValueError("a derived UID needs an object kind, e.g. ('seg', 'series')")
    entropy = ["dicom-node", source_series_uid, algorithm.name, algorithm.version, *map(str, kind)]
    # A unit separator keeps ("a", "bc") and ("ab", "c") apart.
    return generate_uid(prefix=None, entropy_srcs=["\x1f".join(entropy)])


def device_uid(algorithm: AlgorithmId) -> str:
    """The UID of the node as the SR's device observer: one per algorithm name and version."""
    return generate_uid(prefix=None, entropy_srcs=["\x1f".join(["dicom-node", "device", algorithm.name, algorithm.version])])
