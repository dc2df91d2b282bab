"""Deterministic UIDs for the objects the node derives from a source series.

Result UIDs follow content. A job that is re-run on the same input (after a
crash, a requeue, or a re-send of identical instances) must produce the same
Series and SOP Instance UIDs, so that the PACS keeps one copy instead of
collecting duplicates. A job on *different* input (a series completed after a
half-sent first try, a slice replaced) is a different result: most PACS keep
the first object they received under a UID and ignore a later one with the same
UID (Orthanc's default `OverwriteInstances: false`), so new content must come
under new UIDs. A new algorithm version is likewise a different result.

Each UID is therefore a name-based (SHA-1, version 5) UUID of the source
SeriesInstanceUID, the algorithm's name and version, the kind of object and,
for the objects themselves (series and instances), the digest of the exact set
of input instances (`input_digest`: their SOP Instance UIDs and the digests of
their stored files), written as a "2.25." UID (DICOM PS3.5 B.2). Tracking
identifiers (a segment, a measurement group) name a finding across versions
of a result and leave the digest out. (pydicom's generate_uid ignores its
entropy sources when no prefix is given, so it cannot do this.)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

# Fixed namespace of dicom-node's name-based UUIDs; changing it would change every derived UID.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicom-node:derived-uids")


MANUFACTURER = "dicom-node"  # the Manufacturer of every object the node creates


class ResultSeries(IntEnum):
    """The result objects' series, each a number within its producer's series block (`AlgorithmId.series_number`)."""

    SEG = 1
    SR = 2
    KEY_IMAGES = 3
    SUMMARY = 4


@dataclass(frozen=True)
class AlgorithmId:
    """The producer of a result; part of every derived UID and named in the objects.

    `series_block` places its result series in the study: SEG block+1, SR +2, key images +3, summary page +4 (high,
    so derived series sort after the acquired ones in viewers). Each pipeline has its own block, so two pipelines'
    results on one study do not share series numbers. Not part of any UID.
    """

    name: str
    version: str
    series_block: int = 9000

    def series_number(self, kind: ResultSeries) -> int:
        """The SeriesNumber of this producer's `kind` of result object."""
        return self.series_block + kind


def _uuid_uid(*parts: str) -> str:
    # A unit separator keeps ("a", "bc") and ("ab", "c") apart.
    return f"2.25.{uuid.uuid5(_NAMESPACE, chr(0x1F).join(parts)).int}"


def derived_uid(source_series_uid: str, algorithm: AlgorithmId, *kind: str | int, inputs: str = "") -> str:
    """The one derivation of every result UID: the source series, the algorithm, the object kind and the input.

    `kind` names the object, e.g. ("seg", "series"), ("sr", "instance") or
    ("sc", "instance", 3); distinct kinds give distinct UIDs. `inputs` is the
    `input_digest` of the instances the result was computed from: given for
    Series and SOP Instance UIDs (new content, new UIDs), left empty for
    tracking identifiers (the same finding in every version of a result).
    """
    if not kind:
        raise ValueError("a derived UID needs an object kind, e.g. ('seg', 'series')")
    content = (f"inputs:{inputs}",) if inputs else ()
    return _uuid_uid("derived", source_series_uid, algorithm.name, algorithm.version, *map(str, kind), *content)


def report_uid(source_series_uid: str, algorithm: AlgorithmId, input_digest: str) -> str:
    """A result's SR SOP Instance UID (every pipeline's SR takes it): the worker compares it with an earlier result's
    to know whether that one is replaced."""
    return derived_uid(source_series_uid, algorithm, "sr", "instance", inputs=input_digest)


def input_digest(instances: Iterable[tuple[str, str]]) -> str:
    """The digest of a result's exact input: (SOP Instance UID, hex digest of the instance's content) pairs, in
    any order (the set is what counts; a re-send in another order is the same input)."""
    digest = hashlib.sha256()
    for sop_instance_uid, content in sorted(instances):
        digest.update(f"{sop_instance_uid}\x1f{content}\x1e".encode())
    return digest.hexdigest()


def device_uid(algorithm: AlgorithmId) -> str:
    """The UID of the node as the SR's device observer: one per algorithm name and version."""
    return _uuid_uid("device", algorithm.name, algorithm.version)


def derived_frame_of_reference(source_series_uid: str) -> str:
    """The Frame of Reference UID given to results of a source series that has none.

    It depends on the source series only, so every result of that series (SEG,
    SR, key images, any algorithm version) shares one frame of reference.
    """
    return _uuid_uid("frame-of-reference", source_series_uid)
