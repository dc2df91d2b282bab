"""`dicom-node send`: C-STORE files and folders to a peer, with a progress bar and a summary.

Files go out as stored (see `net/scu.py`), grouped so that each association
proposes at most 128 presentation contexts. The summary names every instance
that failed and why, since "some images did not arrive" is useless to an
operator without the status the peer gave.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from dicom_node.config import DicomSettings, ExportSettings
from dicom_node.net.address import DicomAddress
from dicom_node.net.scu import MAX_CONTEXTS, NoAssociation, Scu, StoreItem, read_item
from dicom_node.outcomes import Outcome, StoreResult
from dicom_node.net.tls import TlsArgs
from dicom_node.store.checks import Refused, checked_dataset, part10_dataset

MAX_INFLATED_BYTES = DicomSettings.model_fields["max_inflated_mb"].default * 2**20


class RateColumn(ProgressColumn):
    """Images per second, the number a PACS administrator compares."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} images/s" if speed else "- images/s")


@dataclass
class SendSummary:
    peer: str
    total: int = 0
    sent: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unreachable: str = ""

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.sent == self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "ok": self.ok,
            "total": self.total,
            "sent": self.sent,
            "failed": self.total - self.sent,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.sent / self.seconds, 1) if self.seconds else None,
            "failures": self.failures,
            "skipped_non_dicom": self.skipped,
            "error": self.unreachable or None,
        }

    def text(self) -> str:
        rate = f" ({self.sent / self.seconds:.1f} images/s)" if self.seconds and self.sent else ""
        lines = [f"sent {self.sent} of {self.total} instance(s) to {self.peer} in {self.seconds:.1f} s{rate}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) that are not DICOM")
        if self.total == 0:
            lines.append("no DICOM files to send")
        for failure in self.failures[:50]:
            lines.append(f"FAILED {failure['path']}: {failure['reason']}")
        if len(self.failures) > 50:
            lines.append(f"... and {len(self.failures) - 50} more failure(s)")
        return "\n".join(lines)


def _collect(paths: Iterable[Path], summary: SendSummary) -> list[StoreItem]:
    """Files named explicitly must be DICOM; files found in folders that are not are skipped."""
    items: list[StoreItem] = []
    for path in paths:
        explicit = path.is_file()
        for file in [path] if explicit else sorted(p for p in path.rglob("*") if p.is_file()):
            try:
                item = read_item(file)
            except ValueError as exc:
                if explicit:
                    summary.total += 1
                    summary.failures.append({"path": str(file), "status": None, "reason": str(exc)})
                else:
                    summary.skipped.append(str(file))
                continue
            if (problem := file_problem(item)) is None:
                items.append(item)
            else:
                summary.total += 1
                summary.failures.append({"path": str(file), "sop_instance_uid": item.sop_instance_uid, "status": None, "reason": problem})
    return items


def file_problem(item: StoreItem) -> str | None:
    """What a careful peer would refuse in this file, found before sending it (as storescu refuses an empty UID).

    Sending such a file costs the operator a round trip at best and, to a peer that drops what it cannot parse,
    a network timeout; the same checks as the node's SCP say what is wrong with it.
    """
    for name, uid in (("SOP Class UID", item.sop_class_uid), ("SOP Instance UID", item.sop_instance_uid)):
        if not uid.strip(" \0"):
            return f"not sent: empty {name}"
    data = part10_dataset(item.path.read_bytes())
    try:
        checked_dataset(data, item.transfer_syntax_uid, MAX_INFLATED_BYTES)
    except Refused as refused:
        return f"not sent: {refused} (a peer would answer 0x{refused.problem.status:04X})"
    return None


def _batches(items: list[StoreItem]) -> list[list[StoreItem]]:
    """Consecutive groups whose distinct presentation contexts fit one association."""
    batches: list[list[StoreItem]] = []
    contexts: set[tuple[str, str]] = set()
    for item in items:
        if not batches or (item.context not in contexts and len(contexts) == MAX_CONTEXTS):
            batches.append([])
            contexts = set()
        contexts.add(item.context)
        batches[-1].append(item)
    return batches


def send_files(paths: list[Path], peer: DicomAddress, settings: ExportSettings, quiet: bool = False, tls: TlsArgs | None = None) -> SendSummary:
    summary = SendSummary(str(peer))
    items = _collect(paths, summary)
    summary.total += len(items)
    started = time.perf_counter()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task(f"C-STORE to {peer}", total=len(items))

        def on_result(item: StoreItem, result: StoreResult) -> None:
            progress.advance(task)
            if result.outcome is Outcome.DELIVERED:
                summary.sent += 1
            else:
                status = None if result.status is None else f"0x{result.status:04X}"
                summary.failures.append({"path": str(item.path), "sop_instance_uid": item.sop_instance_uid, "status": status, "reason": result.reason})

        scu = Scu(settings, tls)
        for batch in _batches(items):
            try:
                scu.store(peer, batch, on_result=on_result)
            except NoAssociation as exc:
                summary.unreachable = str(exc)
                break
    summary.seconds = time.perf_counter() - started
    return summary
