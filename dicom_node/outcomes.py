"""What a peer's answer means: delivered, worth retrying, or refused for good.

Decided here, once, for the outbox and `dicom-node send` alike (PS3.4 Annex B
and PS3.7 Annex C), without importing pynetdicom so the CLI's listing
commands stay quick:
  delivered: success, or a warning (0x0001, 0x0107, 0x0116, 0xBxxx): the PACS
             kept the object
  retry:     the peer could not be reached, rejected the association
             transiently or aborted it, did not answer in time, or answered
             0xA7xx (out of resources), 0x0110 (processing failure), 0x0213
             (resource limitation), 0xFE00 (cancelled): it may work later
  refused:   any other failure (0x0122 SOP class not supported, 0xA9xx data
             set does not match, 0xCxxx cannot understand, ...), the
             association rejected permanently, the SOP class or transfer
             syntax refused during negotiation, or an unreadable file: sending
             the same bytes again cannot help
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

WARNING_STATUSES = {0x0001, 0x0107, 0x0116}
TRANSIENT_STATUSES = {0x0110, 0x0213, 0xFE00}


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True)
class StoreResult:
    """What became of one object: the peer's DIMSE status (None without a response) and why."""

    outcome: Outcome
    status: int | None
    reason: str


def classify_status(status: int, comment: str = "") -> StoreResult:
    """Map a C-STORE response status to delivered/retry/refused (see the module docstring)."""
    if status == 0x0000:
        return StoreResult(Outcome.DELIVERED, status, "")
    warning = status in WARNING_STATUSES or status & 0xF000 == 0xB000
    text = f"status 0x{status:04X} ({'warning' if warning else 'failure'})" + (f": {comment}" if comment else "")
    if warning:
        return StoreResult(Outcome.DELIVERED, status, text)
    if status in TRANSIENT_STATUSES or status & 0xFF00 == 0xA700:
        return StoreResult(Outcome.RETRY, status, text)
    return StoreResult(Outcome.REFUSED, status, text)
