"""The SOP classes and transfer syntaxes the node accepts.

Every storage SOP class of the standard is accepted (as Orthanc and MONAI
Deploy's Informatics Gateway do): PACS auto-routing rules send whole studies,
with scouts, dose reports, secondary captures and key objects, and a refused
class fails the sender's whole transfer. What is stored is not necessarily
processed: only the classes a pipeline's selection takes start a job
(`Config.job_sop_classes`). Each called AE may narrow what it accepts
(`CalledAe.sop_classes`, `CalledAe.refused_sop_classes`, like MIG's
`allowedSopClasses`/`ignoredSopClasses`).

The contexts are chosen per association from what the sender proposes
(`contexts_for`): a sender proposes at most 128 contexts, and pynetdicom copies
an acceptor's supported contexts for every association; all 170 storage classes
in 16 syntaxes on the AE would cost 8.5x the former 21 classes' copy per
association, the proposed ones a hundredth of it (`bench/association_contexts.py`,
one run). Each class's context is built once per process and shared
(pynetdicom's negotiation only reads them).
Compressed syntaxes are accepted and stored as received: the node never
recompresses, so what the PACS sent is what the node keeps and what a re-send
reproduces.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context
from pydicom.uid import UID

VERIFICATION = "1.2.840.10008.1.1"
GET_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3"})  # Patient and Study Root C-GET
STORAGE_SOP_CLASSES: frozenset[str] = frozenset(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)

TRANSFER_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


@dataclass(frozen=True)
class SopClassFilter:
    """Which storage classes one called AE accepts: `allowed` (empty: every storage class of the standard), less
    `refused`."""

    allowed: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allowed: Collection[str], refused: Collection[str]) -> SopClassFilter:
        return cls(frozenset(allowed), frozenset(refused))

    def accepts(self, sop_class_uid: str) -> bool:
        return sop_class_uid in (self.allowed or STORAGE_SOP_CLASSES) and sop_class_uid not in self.refused


def contexts_for(proposed: Iterable[str], accepted: SopClassFilter, query_retrieve: frozenset[str] = frozenset()) -> list[PresentationContext]:
    """The contexts to support for an association that proposes these abstract syntaxes: each accepted storage
    class in every transfer syntax the node stores, and Verification; for a peer that may query, the proposed
    Query/Retrieve classes of `query_retrieve`, and where it proposes a C-GET class, every proposed storage class
    with the SCP/SCU role selection a C-GET needs (the node sends on the peer's association)."""
    proposed = set(proposed)
    offered = proposed & query_retrieve
    if offered & GET_SOP_CLASSES:
        storage = [_role_context(uid) for uid in sorted(proposed & STORAGE_SOP_CLASSES)]
    else:
        storage = [_context(uid) for uid in sorted(uid for uid in proposed if accepted.accepts(uid))]
    return [_context(VERIFICATION), *(_context(uid) for uid in sorted(offered)), *storage]


def prepare() -> None:
    """Build every storage class's context now, at start-up (0.1-0.2 s), rather than during the first associations
    that propose them, where a sender proposing some 65 classes would wait for them."""
    contexts_for(STORAGE_SOP_CLASSES, SopClassFilter())


@functools.cache
def _context(uid: str) -> PresentationContext:
    return build_context(uid, list(TRANSFER_SYNTAXES)) if uid in STORAGE_SOP_CLASSES else build_context(uid)


@functools.cache
def _role_context(uid: str) -> PresentationContext:
    """A storage class's context accepting the roles a C-GET's requestor proposes (it may be the SCP)."""
    context = build_context(uid, list(TRANSFER_SYNTAXES))
    context.scu_role, context.scp_role = True, True
    return context


def sop_class_name(uid: str) -> str:
    """The class's name as the standard gives it (the UID itself when unknown), for logs a user can act on."""
    name = UID(uid).name
    return name if name and name != uid else uid
