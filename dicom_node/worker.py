"""Pipeline workers: claim a queued job, run it, record what happened, hand the results to the outbox.

A job's failure is the job's, never the node's: data problems end it `skipped`
(not eligible) or `failed` (with the reason a user reads), an unavailable
inference server puts it back in the queue for later with the reason visible,
and anything unexpected fails the job with the exception named in its reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pydicom import dcmread
from sqlalchemy.orm import Session

from dicom_node import metrics
from dicom_node.config import Config
from dicom_node.inference.base import ContractMismatch, InferenceModel, InferenceUnavailable
from dicom_node.inference.factory import build_models
from dicom_node.output import highdicom_tables
from dicom_node.logs import RepeatingFailure
from dicom_node.memory import freeze_start_up_objects, release_free_memory
from dicom_node.output.inputs import JobInput, Predecessor, stored_input_digest
from dicom_node.output.rejection import write_rejection_note
from dicom_node.output.uids import report_uid
from dicom_node.pipeline.errors import SeriesNotEligible, SeriesRejected
from dicom_node.pipelines.protocol import Pipeline, ResultTarget, SeriesInput
from dicom_node.pipelines.registry import pipeline as registered
from dicom_node.store.jobs import ClaimedJob, JobQueue
from dicom_node.store.outbox import Outbox, ResultObject
from dicom_node.store.result_index import IndexedResult, record_results_in

log = logging.getLogger(__name__)

# Under node.data_dir: where a job's HU volume goes once the model grid is built (anonymous files, `pipeline/spill.py`).
# On the data disk, not in /tmp: a tmpfs there would keep the volume in memory.
SPILL_DIR = "work"


class Worker:
    """One pipeline worker thread's loop."""

    def __init__(self, config: Config, queue: JobQueue, outbox: Outbox, data_dir: Path, name: str) -> None:
        self.config = config
        self.queue = queue
        self.outbox = outbox
        self.data_dir = data_dir
        self.name = name
        self.busy = False  # running a job now (the SCP leaves new associations to idler receiving processes)
        self._models: dict[str, Mapping[str, InferenceModel]] = {}

    def models(self, pipeline: Pipeline) -> Mapping[str, InferenceModel]:
        """The pipeline's models by role, built on first use (the embedded ones work on the pipeline's own grid)."""
        if pipeline.name not in self._models:
            self._models[pipeline.name] = build_models(self.config.models, pipeline, self.config.pipelines[pipeline.name].processing)
        return self._models[pipeline.name]

    def run(self, stopping: threading.Event) -> None:
        highdicom_tables.prepare()  # here, while the node already listens, rather than in the first job (0.5 s)
        freeze_start_up_objects()  # the tables and the rest of start-up stay out of every job's collections (memory.py)
        failures = RepeatingFailure(log, f"{self.name}: claiming jobs")

        def claim_and_process() -> bool:
            job = failures.run(lambda: self.queue.claim(self.name))
            if job is None:
                return False
            self.busy = True
            try:
                self.process(job)
            finally:
                self.busy = False
            release_free_memory()  # the job's arrays are gone now: give their pages back (memory.py)
            return True

        jobs = self.config.jobs
        self.queue.wakeups.serve("jobs", stopping, jobs.poll_seconds, jobs.lease_seconds, claim_and_process)

    def process(self, job: ClaimedJob) -> None:
        tag = f"job {job.id} (series {job.series_instance_uid})"
        steps: dict[str, float] = {}
        begun = time.perf_counter()  # the steps overlap (the classifier has a thread): their sum is not the job's time
        log.info("%s started by %s, attempt %d", tag, self.name, job.attempts)
        try:
            pipeline = registered(job.pipeline)
            models = self.models(pipeline)
            started = time.perf_counter()
            for model in models.values():
                model.check_ready()
            steps["check_models"] = time.perf_counter() - started
            instances = [(uid, self.data_dir / path) for uid, path in self.queue.instances(job.series_id)]
            started = time.perf_counter()
            job_input = self.job_input(job, pipeline, instances)
            steps["input_digest"] = time.perf_counter() - started
            series = SeriesInput(tuple(path for _, path in instances), spill_dir=self.data_dir / SPILL_DIR)
            result = pipeline.run(series, models, self.config.pipelines[job.pipeline].processing)
            steps.update(result.timings)
            started = time.perf_counter()
            out_dir = self.data_dir / "results" / str(job.id)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = ResultTarget(out_dir, self.data_dir, job_input, secondary_capture=self.config.export.secondary_capture)
            manifest = pipeline.write(result, target)
            steps["write_results"] = time.perf_counter() - started
        except SeriesNotEligible as exc:
            self._end(job, tag, "skipped", str(exc), steps)
        except SeriesRejected as exc:
            self._end(job, tag, "failed", str(exc), steps)
        except InferenceUnavailable as exc:
            if job.attempts >= self.config.jobs.max_attempts:
                self._end(job, tag, "failed", f"inference unavailable after {job.attempts} attempts: {exc}", steps)
            else:
                delay = self.config.jobs.retry_delay_seconds
                self.queue.postpone(job, f"waiting for inference: {exc} (attempt {job.attempts}, retry in {delay:g} s)", delay, steps)
                log.warning("%s postponed %g s: %s", tag, delay, exc)
        except ContractMismatch as exc:
            self._end(job, tag, "failed", f"model contract mismatch: {exc}", steps)
        except Exception as exc:  # a bug or an unforeseen input must not take the worker down
            log.exception("%s crashed", tag)
            self._end(job, tag, "failed", f"{type(exc).__name__}: {exc}", steps)
        else:
            objects = [ResultObject.from_file(self.data_dir / path, self.data_dir) for path in manifest.dicom_files()]
            indexed = [IndexedResult.from_file(obj.path, self.data_dir) for obj in objects]
            destinations = self.config.pipelines[job.pipeline].destinations

            def publish(session: Session) -> None:
                self._publish(session, job, pipeline, objects, destinations, job_input)
                record_results_in(session, job.id, job.series_id, indexed)

            took = time.perf_counter() - begun  # before the job's row says finished: the log never gives more than the row
            if self.queue.finish(job, "done", steps=steps, result=manifest.to_json(), on_done=publish):
                metrics.count_job_finished("done")
                if manifest.warnings:
                    log.warning("%s: source series has invalid identifiers: %s", tag, "; ".join(manifest.warnings))
                log.info(
                    "%s done in %.1f s by %s %s: %s; %d object(s) to %s",
                    tag,
                    took,
                    pipeline.name,
                    pipeline.algorithm.version,
                    manifest.log_line(),
                    len(objects),
                    ", ".join(destinations) or "no destination",
                )
            else:
                log.info("%s finished but was superseded or taken over meanwhile: its results are not exported", tag)
        for step, seconds in steps.items():
            metrics.observe_step(step, seconds)

    def job_input(self, job: ClaimedJob, pipeline: Pipeline, instances: list[tuple[str, Path]]) -> JobInput:
        """The job's exact input (its digest: the results' UIDs follow it), what is known of its completeness, and
        the earlier result it replaces: the latest one whose SR this job would not write again (other content)."""
        digest = stored_input_digest(instances)
        earlier = self.queue.earlier_result(job, lambda stored: pipeline.manifest_type.from_json({"pipeline": pipeline.name, **stored}).files.sr)
        predecessor = None
        if earlier is not None and (self.data_dir / earlier.sr_path).exists():
            sr_path = self.data_dir / earlier.sr_path
            earlier_uid = str(dcmread(sr_path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            if earlier_uid != report_uid(job.series_instance_uid, pipeline.algorithm, digest):
                predecessor = Predecessor(sr_path, earlier.finished_at)
        incomplete = (job.input_incomplete,) if job.input_incomplete else ()
        return JobInput(digest, len(instances), incomplete, predecessor)

    def _publish(
        self, session: Session, job: ClaimedJob, pipeline: Pipeline, objects: list[ResultObject], destinations: list[str], job_input: JobInput
    ) -> None:
        """In the transaction that marks the job done: queue its results, mark what earlier jobs of the series sent
        and this one no longer produces as superseded, and withdraw those objects (IHE IOCM rejection note) where the
        destination accepts it."""
        with_source = {dest.name for dest in self.config.destinations if dest.include_source}
        self.outbox.enqueue_job_in(session, job.id, job.series_id, objects, destinations, with_source)
        superseded = self.outbox.supersede_in(session, job.id, job.series_id, job.pipeline, {obj.sop_instance_uid for obj in objects})
        accepting = {dest.name for dest in self.config.destinations if dest.rejection_notes}
        by_destination: dict[str, list[Path]] = {}
        for old in superseded:
            if old.destination in accepting and old.path.exists():
                by_destination.setdefault(old.destination, []).append(old.path)
        for destination, paths in sorted(by_destination.items()):
            note = write_rejection_note(
                paths, self.data_dir / "results" / str(job.id), destination, job.series_instance_uid,
                pipeline.algorithm, job_input.digest,
                f"replaced by the result of job {job.id} (new input for series {job.series_instance_uid})",
            )
            self.outbox.enqueue_in(session, job.id, [ResultObject.from_file(note, self.data_dir)], [destination])
            log.info("job %d: rejection note %s withdraws %d object(s) of earlier results at %s", job.id, note.name, len(paths), destination)

    def _end(self, job: ClaimedJob, tag: str, state: str, reason: str, steps: dict[str, float]) -> None:
        if self.queue.finish(job, state, reason=reason, steps=steps):
            metrics.count_job_finished(state)
        log.warning("%s %s: %s", tag, state, reason)
