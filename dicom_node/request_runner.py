"""Runs inference requests: find the study in the PACS, retrieve what the node lacks, then follow its jobs and exports.

Each step is one claim of the request's row (`store/inference_requests.py`);
a step that has to wait (instances still coming, a job running, a PACS that
is down) releases the row, due again later. Steps can be repeated, so a
request resumed after its process died (its lease ran out) just goes on:
the retrieve compares the PACS's instances with the index again and fetches
only those still missing.

Retrieved instances take the node's ordinary receive path: C-MOVE through
its own Storage SCP, C-GET and WADO-RS through the same `Receiver` here. The
ordinary scheduler queues their jobs, held back while the request retrieves
(the PACS's count plus `retrieve.idle_timeout_seconds` decide when a series
is complete), and the ordinary outbox exports the results.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pynetdicom import evt
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Config, Destination
from dicom_node.logs import RepeatingFailure
from dicom_node.net.multipart import Part10
from dicom_node.net.retrieve import QueryRetrieveScu, RemoteSeries, RetrieveRefused, RetrieveResult, explain_status, resolve_source
from dicom_node.net.scu import PeerUnavailable
from dicom_node.net.wado_client import fetch_series
from dicom_node.pipelines.registry import PIPELINES, read_manifest
from dicom_node.pipelines.registry import pipeline as registered
from dicom_node.store.files import part10_header
from dicom_node.store.inference_requests import ClaimedRequest, InferenceRequests, error_entry
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import InferenceRequestSeries, Job, utcnow
from dicom_node.store.outbox import Outbox, ResultObject
from dicom_node.store.receive import Batch, Receiver

log = logging.getLogger(__name__)

WAITING_FOR_INSTANCES = ("retrieving", "waiting")
SERIES_FINAL = ("done", "failed", "skipped", "cancelled")


class RequestRunner:
    _working: ClaimedRequest  # the claim of the step in hand: `step` sets it, `_enter` moves it on

    def __init__(self, config: Config, sessions: sessionmaker[Session], data_dir: Path, owner: str, queue: JobQueue, outbox: Outbox) -> None:
        self.config = config
        self.settings = config.retrieve
        self.owner = owner
        self.requests = InferenceRequests(sessions, self.settings.lease_seconds)
        self.outbox = outbox
        self.receiver = Receiver(config.dicom, data_dir, Indexer(sessions, config.job_sop_classes()), queue)
        self.data_dir = data_dir
        self.calling_ae = config.export.calling_ae_title
        self.called = config.dicom.called_aes[0]

    def run(self, stopping: threading.Event) -> None:
        """Work on due requests until `stopping` is set; a second thread renews the leases of those in hand."""
        threading.Thread(target=self._renew_leases, args=(stopping,), name="request-leases", daemon=True).start()
        failures = RepeatingFailure(log, "inference requests: claiming")
        while not stopping.is_set():
            claim = failures.run(lambda: self.requests.claim(self.owner))
            if claim is None:
                stopping.wait(self.settings.poll_seconds)
                continue
            self.step(claim)

    def _renew_leases(self, stopping: threading.Event) -> None:
        """A retrieve can outlast a lease: the requests in hand are renewed every third of one while it runs."""
        failures = RepeatingFailure(log, f"renewing the leases of {self.owner}'s inference requests")
        while not stopping.wait(self.settings.lease_seconds / 3):
            failures.run(lambda: self.requests.renew(self.owner))

    # One step -------------------------------------------------------------------
    def step(self, claim: ClaimedRequest) -> None:
        """One claim's work. A failure is recorded, and a retry resumes, at the step being worked on (`_enter` moves
        `self._working` on): with the claim as it was claimed, a PACS gone during a retrieve sent the request back to
        C-FIND, and every failure of C-FIND was reported at step "queued"."""
        self._working = claim
        try:
            source = resolve_source(self.config, claim.source)
            if claim.state in ("queued", "finding"):
                self._find(claim, source)
            elif claim.state == "retrieving":
                if claim.retrieve_ended_at is None:
                    self._retrieve(claim, source, None)
                else:
                    self._await_instances(claim)
            elif claim.state == "processing":
                self._process(claim)
            elif claim.state == "exporting":
                self._export(claim)
        except PeerUnavailable as exc:
            self._retry_later(self._working, str(exc))
        except RetrieveRefused as exc:
            log.error("inference request %d failed at step %s: %s", claim.id, self._working.state, exc)
            self._fail(self._working, str(exc), exc.status)
        except ValueError as exc:  # a source that cannot be resolved
            self._fail(self._working, str(exc))
        except Exception as exc:  # a bug must not leave the request held until its lease runs out
            log.exception("inference request %d: step %s failed", claim.id, self._working.state)
            self._fail(self._working, f"{type(exc).__name__}: {exc}")

    def _fail(self, claim: ClaimedRequest, message: str, status: int | None = None) -> None:
        self.requests.release(claim, "failed", error=error_entry(status, message))
        self._free_series(claim)

    def _free_series(self, claim: ClaimedRequest) -> None:
        for row in self.requests.series(claim.id):
            if row.state in WAITING_FOR_INSTANCES + ("found",):
                self.requests.set_series(claim.id, row.series_instance_uid, state="failed", reason="request failed")

    def _retry_later(self, claim: ClaimedRequest, message: str) -> None:
        attempts = claim.attempts + 1
        if utcnow() - claim.created_at > timedelta(seconds=self.settings.retry_horizon_seconds):
            self._fail(claim, f"{message}; gave up after {attempts} attempt(s) (retrieve.retry_horizon_seconds)")
            return
        delay = min(self.settings.retry_initial_seconds * 2 ** (attempts - 1), self.settings.retry_max_seconds)
        log.warning("inference request %d: %s (attempt %d, retry in %g s)", claim.id, message, attempts, delay)
        error = error_entry(None, f"{message} (attempt {attempts}, retry in {delay:g} s)")
        self.requests.release(claim, claim.state, delay, error=error, attempts=attempts)

    def _scu(self, source: Destination) -> QueryRetrieveScu:
        return QueryRetrieveScu(source, self.settings, self.calling_ae)

    def _enter(self, claim: ClaimedRequest, state: str) -> ClaimedRequest:
        """Show the step being worked on (the row stays held); `step` reports a failure at it."""
        self.requests.set_state(claim, state)
        self._working = ClaimedRequest(**{**claim.__dict__, "state": state})
        return self._working

    # Finding -----------------------------------------------------------------------
    def _find(self, claim: ClaimedRequest, source: Destination) -> None:
        claim = self._enter(claim, "finding")
        found = self._scu(source).find(claim.query, self.settings.modalities)
        if not found:
            modalities = ", ".join(self.settings.modalities) or "any modality"
            raise RetrieveRefused(f"C-FIND found no series ({modalities}) matching {claim.query} in {source.name}")
        rows = []
        for series in found:
            stored = self.requests.stored_instances(series.series_instance_uid)
            newest = self.requests.newest_job(series.series_instance_uid)
            rows.append(
                InferenceRequestSeries(
                    request_fk=claim.id,
                    series_instance_uid=series.series_instance_uid,
                    study_instance_uid=series.study_instance_uid,
                    modality=series.modality,
                    sop_class_uids=series.sop_class_uids,
                    expected=len(series.instances),
                    present_before=sum(instance.sop_instance_uid in stored for instance in series.instances),
                    state="found",
                    after_job=newest.id if newest is not None else 0,
                    reason="",
                )
            )
        self.requests.replace_series(claim.id, rows)
        log.info(
            "inference request %d: %s holds %d series, %d instance(s) (%d already here)",
            claim.id, source.name, len(rows), sum(r.expected for r in rows), sum(r.present_before for r in rows),
        )
        self._retrieve(claim, source, found)

    # Retrieving --------------------------------------------------------------------
    def _retrieve(self, claim: ClaimedRequest, source: Destination, found: list[RemoteSeries] | None) -> None:
        claim = self._enter(claim, "retrieving")
        rows = {row.series_instance_uid: row for row in self.requests.series(claim.id)}
        if found is None:  # resumed: ask again, the PACS's answer is the truth about what is missing
            found = [s for s in self._scu(source).find(claim.query, self.settings.modalities) if s.series_instance_uid in rows]
        self.requests.mark_retrieve_started(claim)
        for series in found:
            row = rows[series.series_instance_uid]
            if row.state in SERIES_FINAL:
                continue
            stored = self.requests.stored_instances(series.series_instance_uid)
            missing = [i.sop_instance_uid for i in series.instances if i.sop_instance_uid not in stored]
            if not missing:
                self.requests.set_series(claim.id, row.series_instance_uid, state="present" if row.present_before == row.expected else "retrieved")
                continue
            if self.requests.retrieved_elsewhere(claim.id, row.series_instance_uid):
                log.info("inference request %d: series %s is being retrieved by another request; waiting for it", claim.id, row.series_instance_uid)
                self.requests.set_series(claim.id, row.series_instance_uid, state="waiting", reason="retrieved by another request")
                continue
            self.requests.set_series(claim.id, row.series_instance_uid, state="retrieving")
            result = self._fetch(claim, source, series, None if len(missing) == len(series.instances) else missing)
            log.info(
                "inference request %d: %s of series %s from %s: %d completed, %d failed, %d warning(s)",
                claim.id, source.retrieve_method, row.series_instance_uid, source.name, result.completed, result.failed, result.warning,
            )
            if result.failed:
                self.requests.add_error(claim, result.status, explain_status(result.status, source.retrieve_method or "C-MOVE", self.calling_ae, result.comment))
        self.requests.mark_retrieve_ended(claim)
        self._await_instances(claim)

    def _fetch(self, claim: ClaimedRequest, source: Destination, series: RemoteSeries, missing: list[str] | None) -> RetrieveResult:
        scu = self._scu(source)
        if source.retrieve_method == "C-MOVE":
            return scu.move(series, missing, self.called.ae_title, claim.message_id)
        batch = self.receiver.open(source.ae_title, self.called.ae_title, source.host, source.port, self.called.pipelines)
        self.receiver.note_retrieve(batch, self.calling_ae, claim.message_id)
        how = "aborted"
        try:
            if source.retrieve_method == "C-GET":
                result = scu.get(series, missing, self._get_store(batch), claim.message_id)
            else:
                result = fetch_series(source, series, missing, self.settings.dimse_timeout, self._part_store(batch))
            how = "released"
            return result
        finally:
            self.receiver.close(batch, how)

    def _get_store(self, batch: Batch) -> Callable[[evt.Event], int]:
        def store(event: evt.Event) -> int:
            request = event.request
            sop_class, sop_instance, syntax = request.AffectedSOPClassUID, request.AffectedSOPInstanceUID, str(event.context.transfer_syntax)
            header = part10_header(sop_class, sop_instance, syntax)
            return self.receiver.store(batch, header, request.DataSet.getbuffer(), syntax, (sop_class, sop_instance)).status

        return store

    def _part_store(self, batch: Batch) -> Callable[[Part10], bool]:
        def store(part: Part10) -> bool:
            announced = (str(part.meta.get("MediaStorageSOPClassUID", "")), str(part.meta.get("MediaStorageSOPInstanceUID", "")))
            return self.receiver.store(batch, part.header, part.dataset, str(part.meta.TransferSyntaxUID), announced).ok

        return store

    def _await_instances(self, claim: ClaimedRequest) -> None:
        """Complete when every series holds what the PACS counted; partial once nothing came for the idle timeout."""
        rows = [row for row in self.requests.series(claim.id) if row.state in WAITING_FOR_INSTANCES]
        incomplete = []
        for row in rows:
            have = len(self.requests.stored_instances(row.series_instance_uid))
            if have >= row.expected:
                self.requests.set_series(claim.id, row.series_instance_uid, state="retrieved", reason="")
            else:
                incomplete.append((row, have))
        if not incomplete:
            self.requests.release(claim, "processing")
            return
        ended = self.requests.retrieve_ended_at(claim.id) or utcnow()
        last = max(filter(None, [self.requests.last_arrival([row.series_instance_uid for row, _ in incomplete]), ended]))
        if utcnow() - last < timedelta(seconds=self.settings.idle_timeout_seconds):
            self.requests.release(claim, "retrieving", self.settings.poll_seconds)
            return
        missing = "; ".join(f"series {row.series_instance_uid}: {have} of {row.expected} instances" for row, have in incomplete)
        for row, have in incomplete:
            self.requests.set_series(claim.id, row.series_instance_uid, state="partial", reason=f"{have} of {row.expected} instances came")
        message = f"partial retrieve: {missing} came within {self.settings.idle_timeout_seconds:g} s of the last arrival"
        if self.settings.partial == "fail":
            self._fail(claim, message + " (retrieve.partial = 'fail')")
        else:
            self.requests.release(claim, "processing", error=error_entry(None, message + "; processing what came"), partial=True)

    # Processing --------------------------------------------------------------------
    def _process(self, claim: ClaimedRequest) -> None:
        pending = 0
        for row in self.requests.series(claim.id):
            if row.state in SERIES_FINAL:
                continue
            job = self._job_of(claim, row)
            if job is None or job.state in ("queued", "running"):
                pending += 1
                continue
            state = {"done": "done", "skipped": "skipped"}.get(job.state, "failed")
            self.requests.set_series(claim.id, row.series_instance_uid, state=state, job_fk=job.id, reason=job.reason or row.reason)
        if pending:
            self.requests.release(claim, "processing", self.settings.poll_seconds)
            return
        rows = self.requests.series(claim.id)
        if any(row.state == "done" for row in rows):
            self.requests.release(claim, "exporting")
            return
        reasons = "; ".join(f"series {row.series_instance_uid} {row.state}: {row.reason}" for row in rows)
        self._fail(claim, f"no series could be processed: {reasons}")

    def _job_of(self, claim: ClaimedRequest, row: InferenceRequestSeries) -> Job | None:
        """The job whose result answers the request for this series (following supersession), or None yet."""
        if row.job_fk is not None:
            job = self.requests.job(row.job_fk)
            while job is not None and job.state == "superseded" and job.superseded_by is not None:
                job = self.requests.job(job.superseded_by)
            return job
        newest = self.requests.newest_job(row.series_instance_uid)
        if newest is not None and (newest.id > row.after_job or newest.state in ("queued", "running")):
            chosen = newest
        elif row.state == "present" and newest is not None and newest.state == "done" and not claim.force and _current(newest):
            log.info("inference request %d: series %s has results of version %s (job %d): not run again", claim.id, row.series_instance_uid, registered(newest.pipeline).algorithm.version, newest.id)
            chosen = newest
        elif row.state == "present":
            self.requests.make_pending(row.series_instance_uid)  # stored before: nothing new will queue its job
            self.requests.set_series(claim.id, row.series_instance_uid, state="processing")
            return None
        else:
            return None
        self.requests.set_series(claim.id, row.series_instance_uid, state="processing", job_fk=chosen.id)
        return chosen

    # Exporting ---------------------------------------------------------------------
    def _destinations(self, claim: ClaimedRequest) -> list[str]:
        if claim.destinations:
            return claim.destinations
        return sorted({name for pipeline in claim.pipelines for name in self.config.pipelines[pipeline].destinations})

    def _export(self, claim: ClaimedRequest) -> None:
        destinations = self._destinations(claim)
        jobs = [self.requests.job(row.job_fk) for row in self.requests.series(claim.id) if row.state == "done" and row.job_fk]
        done_jobs = [job for job in jobs if job is not None]
        for job in done_jobs:  # destinations the pipeline does not send to: queued here, once (the outbox is idempotent)
            extra = sorted(set(destinations) - {e.destination for e in self.requests.exports_of([job.id], destinations)})
            if extra:
                manifest = read_manifest(job.pipeline, job.result)
                objects = [ResultObject.from_file(Path(path), self.data_dir) for path in manifest.dicom_files()] if manifest else []
                self.outbox.enqueue(job.id, objects, extra)
        exports = self.requests.exports_of([job.id for job in done_jobs], destinations)
        if any(export.state in ("pending", "sending") for export in exports):
            self.requests.release(claim, "exporting", self.settings.poll_seconds)
            return
        failed = [export for export in exports if export.state == "failed"]
        if failed:
            details = "; ".join(f"export {e.id} to {e.destination}: {e.last_error}" for e in failed)
            self._fail(claim, f"{len(failed)} result object(s) could not be exported: {details}", failed[0].last_status)
            return
        self.requests.release(claim, "done")


def _current(job: Job) -> bool:
    """Whether a done job's result was made by the version of its pipeline this node runs (a request re-runs the
    series otherwise)."""
    manifest = read_manifest(job.pipeline, job.result)
    return manifest is not None and job.pipeline in PIPELINES and manifest.algorithm_version == PIPELINES[job.pipeline].algorithm.version
