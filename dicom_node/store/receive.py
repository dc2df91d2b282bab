"""Receive one instance durably, whatever carried it: a C-STORE (net/scp.py) or a STOW-RS part (web/dicomweb/).

Only what must happen before the sender's answer happens here: the disk guard,
the identifying attributes (pixel data never decoded), the duplicate policy,
the durable write and the index row. The answer is a DIMSE status with a
comment: the SCP sends it as is, STOW-RS puts it in the Failure Reason of its
response (PS3.18 uses the same codes).

Instances arrive in a *batch*: an association, or one STOW-RS request, which
acts like one. A batch is an association row in the index while it is open,
so the scheduler queues its series only once it has ended, as it does for a
released association.

Statuses (PS3.4 Annex B; the comment says why):
  0x0000 success (also for a duplicate under the 'keep-first' policy)
  0xA700 out of resources: free disk below `dicom.min_free_disk_mb`, the write/commit failed, or a deflated
         data set inflates beyond `dicom.max_inflated_mb`
  0xA900 data set does not match the SOP class/instance the sender announced (or the study, for STOW-RS), its
         Pixel Data is shorter than its image attributes say, or an identifier is longer than the index keeps whole
  0xC210 cannot understand: the data set cannot be decoded in its transfer syntax up to Pixel Data
         (store/checks.py says where)
  0xC211 cannot understand: SOP Instance UID, Study Instance UID or Series Instance UID missing (for C-STORE
         also: the request's command lacks its Affected SOP Class/Instance UID, net/requests.py)
  0xC221 duplicate SOP Instance UID refused (policy 'reject')
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydicom import dcmread

from dicom_node import metrics
from dicom_node.config import DicomSettings
from dicom_node.store.db import once_more_if_disconnected
from dicom_node.store.checks import MISSING_UIDS, NOT_MATCHING, OUT_OF_RESOURCES, UNDECODABLE, Refused, checked_dataset, same_uid
from dicom_node.store.files import create_durably, instance_relpath, write_durably
from dicom_node.store.models import pipelines_value
from dicom_node.store.ingest import (
    IDENTIFIER_TAGS,
    LAST_IDENTIFIER_TAG,
    DuplicateInstance,
    Indexer,
    InstanceMeta,
    decode_data_set,
    same_data_set,
)
from dicom_node.store.jobs import JobQueue
from dicom_node.store.shared_storage import directory_sync_needed, new_entry_sync_needed

log = logging.getLogger(__name__)

SUCCESS = 0x0000
DUPLICATE_REFUSED = 0xC221


@dataclass(frozen=True)
class Outcome:
    """The answer for one instance; `meta` is set once its identifiers could be read."""

    status: int
    comment: str = ""
    meta: InstanceMeta | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


@dataclass
class Batch:
    """An association (or a STOW-RS request): counters written to the index when it ends."""

    id: int
    uuid: str
    label: str
    pipeline: str  # the called AE's pipelines, as Series.pipeline keeps them
    instances: int = 0
    nbytes: int = 0
    failures: int = 0
    series: dict[str, int] = field(default_factory=dict)
    resent: dict[str, int] = field(default_factory=dict)  # series -> instances kept as duplicates (already stored)
    retrieve: tuple[str, int] | None = None  # the (Move Originator AE, Message ID) of the retrieve that brought it


class Receiver:
    """The durable receive path over the data dir, the index and the association bookkeeping."""

    def __init__(self, settings: DicomSettings, data_dir: Path, indexer: Indexer, queue: JobQueue) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.indexer = indexer
        self.queue = queue

    @cached_property
    def sync_directory(self) -> bool:
        """Whether a file replaced by rename gets a directory fsync of its own; decided (and logged) at first use."""
        needed, why = directory_sync_needed(self.settings.sync_directories, self.data_dir, self.indexer.database_url)
        log.info("a replaced instance's rename %s: %s", "is fsynced" if needed else "is made durable by the index commit", why)
        return needed

    @cached_property
    def sync_new_entries(self) -> bool:
        """Whether a new instance's file gets a directory fsync besides its own; decided (and logged) at the first instance."""
        needed, why = new_entry_sync_needed(self.settings.sync_directories, self.data_dir)
        log.info("a new instance's directory %s: %s", "is fsynced" if needed else "needs no fsync of its own", why)
        return needed

    # Batches --------------------------------------------------------------
    def open(self, calling: str, called: str, host: str, port: int, pipelines: Sequence[str]) -> Batch:
        # A second row for a first one that did commit would stay open until its lease ran out: rarer than a drop
        # at the moment an association starts, which refused all of its instances.
        row_id, row_uuid = once_more_if_disconnected(lambda: self.queue.open_association(calling, called, host, port), "opening an association")
        return Batch(row_id, row_uuid, f"{calling}@{host}:{port} -> {called}", pipelines_value(pipelines))

    def note_retrieve(self, batch: Batch, originator_ae: str, message_id: int) -> None:
        """Record once per batch which retrieve (C-MOVE, or the node's own C-GET/WADO-RS) brought its instances."""
        if batch.retrieve is None:
            batch.retrieve = (originator_ae, message_id)
            self.queue.record_retrieve(batch.id, originator_ae, message_id)

    def close(self, batch: Batch, how: str) -> None:
        """Record how the batch ended ('released', 'aborted'); from now on its series may settle into jobs."""
        resent = once_more_if_disconnected(
            lambda: self.queue.close_association(
                batch.id, how, batch.instances, batch.nbytes, batch.failures, batch.resent, self.settings.reexport_resent
            ),
            "closing an association",
        )
        self.indexer.association_ended(batch.id)
        series = ", ".join(f"{uid} ({n})" for uid, n in batch.series.items()) or "none"
        log.info(
            "association %s %s: %d instance(s), %.1f MB, %d failure(s), %d duplicate(s); series: %s",
            batch.uuid[:8],
            how,
            batch.instances,
            batch.nbytes / 1e6,
            batch.failures,
            sum(batch.resent.values()),
            series,
            extra={"association": batch.uuid},
        )
        if how != "released" and batch.series:
            log.warning(
                "association %s ended %s: its series (%s) are held back until a sender completes them with a normal release "
                "(or jobs.incomplete_grace_seconds passes; the result is then marked incomplete)",
                batch.uuid[:8], how, ", ".join(batch.series), extra={"association": batch.uuid},
            )
        for outcome in resent:
            log.info("association %s re-sent %d instance(s) already stored: %s", batch.uuid[:8], batch.resent[outcome.series_instance_uid], outcome,
                     extra={"association": batch.uuid, "series": outcome.series_instance_uid})

    # Instances ------------------------------------------------------------
    def store(
        self, batch: Batch, header: bytes, raw: memoryview, transfer_syntax: str, announced: tuple[str, str], study: str | None = None
    ) -> Outcome:
        """Store one encoded data set (`header`: preamble and file meta) if it passes; count the outcome.

        `announced` is the (SOP Class UID, SOP Instance UID) the sender said it is sending ('' for what it did
        not say, as in a STOW-RS part whose file meta lacks it); `study`, when given, the study it must belong to
        (STOW-RS to a study's URL).
        """
        outcome = self._store(batch, header, raw, transfer_syntax, announced, study)
        if not outcome.ok:
            batch.failures += 1
            metrics.count_refused(outcome.status)
        return outcome

    def _disk_is_low(self) -> bool:
        free_mb = shutil.disk_usage(self.data_dir).free / 2**20
        return free_mb < self.settings.min_free_disk_mb

    def _store(
        self, batch: Batch, header: bytes, raw: memoryview, transfer_syntax: str, announced: tuple[str, str], study: str | None
    ) -> Outcome:
        announced_class, announced_instance = announced
        tag = f"association {batch.uuid[:8]}: instance {announced_instance or '(not announced)'}"
        fields: dict[str, str] = {"association": batch.uuid}
        if self._disk_is_low():
            log.error("%s refused: free disk below %d MB", tag, self.settings.min_free_disk_mb, extra=fields)
            return Outcome(OUT_OF_RESOURCES, "out of disk space")
        try:
            checked = checked_dataset(raw, transfer_syntax, self.settings.max_inflated_mb * 2**20, IDENTIFIER_TAGS, LAST_IDENTIFIER_TAG)
            meta = InstanceMeta.from_checked(checked, transfer_syntax)
        except Refused as refused:
            log.error("%s refused: %s", tag, refused, extra=fields)
            return Outcome(refused.problem.status, refused.problem.comment)
        except Exception as exc:  # any decoding failure of peer data
            log.error("%s refused: data set cannot be decoded: %s", tag, exc, extra=fields)
            return Outcome(UNDECODABLE, "data set cannot be decoded")
        if not (meta.sop_class_uid or meta.sop_instance_uid or meta.study_instance_uid):
            log.error("%s refused: no DICOM identifiers found in the data set", tag)
            return Outcome(UNDECODABLE, "data set cannot be decoded")
        if not (meta.sop_instance_uid and meta.study_instance_uid and meta.series_instance_uid):
            log.error("%s refused: SOP, study or series instance UID missing", tag, extra=fields)
            return Outcome(MISSING_UIDS, "SOP/Study/Series Instance UID missing", meta)
        fields.update(study=meta.study_instance_uid, series=meta.series_instance_uid)
        if (announced_instance and not same_uid(meta.sop_instance_uid, announced_instance)) or announced_class not in ("", meta.sop_class_uid):
            log.error("%s refused: data set says %s of class %s", tag, meta.sop_instance_uid, meta.sop_class_uid, extra=fields)
            return Outcome(NOT_MATCHING, "data set does not match the request's SOP class/instance", meta)
        if study is not None and meta.study_instance_uid != study:
            log.error("%s refused: of study %s, not %s", tag, meta.study_instance_uid, study, extra=fields)
            return Outcome(NOT_MATCHING, "data set belongs to another study", meta)

        # The path is a function of the UIDs, so only an instance whose file exists can be a re-send: the index
        # is asked only then (a file without a row is one a crash left unacknowledged: it is simply replaced).
        relpath = instance_relpath(meta.study_instance_uid, meta.series_instance_uid, meta.sop_instance_uid)
        path = self.data_dir / relpath
        exists = path.exists()
        previous = self.indexer.indexed_path(meta.sop_instance_uid) if exists else None
        if previous is not None and (refusal := self._duplicate(tag, fields, previous, raw, transfer_syntax)) is not None:
            return self._resent(batch, refusal, meta)
        try:
            size = self._write(path, header, raw, new=not exists)
            try:
                self.indexer.record(meta, relpath, size, batch.id, batch.pipeline, replace=previous is not None)
            except DuplicateInstance as duplicate:  # the same UID came before in another study or series
                previous = duplicate.path
                if (refusal := self._duplicate(tag, fields, previous, raw, transfer_syntax)) is not None:
                    # Under the same path (the same instance sent twice at once, on two associations or receiving
                    # processes, both past the file check) the file is the indexed instance's own: it stays.
                    if previous != relpath:
                        (self.data_dir / relpath).unlink(missing_ok=True)
                    return self._resent(batch, refusal, meta)
                self.indexer.record(meta, relpath, size, batch.id, batch.pipeline, replace=True)
        except Exception as exc:  # disk or database failure: the sender must retry, nothing was acknowledged
            log.exception("%s failed to store: %s", tag, exc, extra=fields)
            return Outcome(OUT_OF_RESOURCES, f"storage failed: {type(exc).__name__}", meta)
        if previous is not None and previous != relpath:
            (self.data_dir / previous).unlink(missing_ok=True)
        batch.instances += 1
        batch.nbytes += size
        metrics.count_instance(size)
        batch.series[meta.series_instance_uid] = batch.series.get(meta.series_instance_uid, 0) + 1
        log.debug("%s stored (series %s, %d bytes)", tag, meta.series_instance_uid, size, extra=fields)
        return Outcome(SUCCESS, meta=meta)

    @staticmethod
    def _resent(batch: Batch, refusal: Outcome, meta: InstanceMeta) -> Outcome:
        """A duplicate's answer; one kept (success) is counted for the association's one line about its series."""
        if refusal.ok:
            batch.resent[meta.series_instance_uid] = batch.resent.get(meta.series_instance_uid, 0) + 1
        return Outcome(refusal.status, refusal.comment, meta)

    def _write(self, path: Path, header: bytes, raw: memoryview, new: bool) -> int:
        """Write the instance's file durably; return its size.

        A new instance (the common case) is created in place, with one fsync. A file that is there (a re-send, or
        one a crash left unacknowledged) is replaced whole, by rename; so is a new one that another association
        started writing meanwhile (the same instance, sent twice at once)."""
        if new:
            try:
                return create_durably(path, header, raw, sync_directory=self.sync_new_entries)
            except FileExistsError:
                pass
        return write_durably(path, header, raw, sync_directory=self.sync_directory)

    def _duplicate(self, tag: str, fields: dict[str, str], stored: Path, raw: memoryview, syntax: str) -> Outcome | None:
        """The answer to a re-sent SOP Instance UID under the configured policy; None: store the new copy."""
        policy = self.settings.duplicate_policy
        if policy == "reject":
            log.warning("%s refused: duplicate (policy reject)", tag, extra=fields)
            return Outcome(DUPLICATE_REFUSED, "duplicate SOP Instance UID refused")
        if policy == "keep-first" or self._same_content(stored, raw, syntax):
            log.debug("%s is a duplicate: kept the stored copy (%s)", tag, "policy keep-first" if policy == "keep-first" else "same content", extra=fields)
            return Outcome(SUCCESS)
        return None

    def _same_content(self, stored: Path, raw: memoryview, syntax: str) -> bool:
        """True if the stored instance holds the received data set: a re-send of the same instance, whoever sent it.

        Equal bytes are the common case and cost one read. Otherwise (another transfer syntax or encoding) both
        are decoded and compared attribute by attribute, pixel data by value; that is paid only for a SOP Instance
        UID that is already stored, never on the ordinary receive path.
        """
        path = self.data_dir / stored
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        if data.endswith(raw) and len(data) - len(raw) < 4096:
            return True
        try:
            return same_data_set(dcmread(io.BytesIO(data)), decode_data_set(raw, syntax))
        except Exception as exc:  # a copy we cannot decode is not shown to be the same: store it (policy overwrite)
            log.debug("%s: cannot compare with the received copy: %s", stored, exc)
            return False
