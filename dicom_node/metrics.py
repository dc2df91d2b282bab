"""Prometheus metrics of the node, served at `/metrics`.

Two kinds: *event* metrics (counters and histograms) that the receiving, pipeline,
export and inference code update as things happen, through the small functions
below so that callers never touch prometheus_client; and *state* metrics (jobs by
state, queue depth, exports by state: `store/gauges.py`) that are read from the database at scrape
time, because the database is the truth shared by every node process and a
counter kept in one process would disagree with it after a restart.

Event metrics live in this module's own `REGISTRY` (not prometheus_client's
global one), so importing the module twice in tests or embedding the node in
another program never registers a name twice.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)


_INSTANCES = Counter("dicom_node_instances_received", "Instances stored and acknowledged by the Storage SCP.", registry=REGISTRY)
_BYTES = Counter("dicom_node_received_bytes", "Bytes of instance files stored by the Storage SCP.", registry=REGISTRY)
_REFUSED = Counter(
    "dicom_node_instances_refused", "C-STORE requests answered with a failure status.", ["status"], registry=REGISTRY
)
_ASSOCIATIONS = Counter(
    "dicom_node_associations", "Association requests by outcome (accepted, rejected).", ["outcome"], registry=REGISTRY
)
_CONNECTIONS_REFUSED = Counter(
    "dicom_node_connections_refused",
    "DICOM connections closed by the node before or outside an association's normal end, by reason: not-a-request "
    "(garbage, another PDU, a malformed A-ASSOCIATE-RQ), timeout (no complete A-ASSOCIATE-RQ within "
    "dicom.handshake_timeout), evicted (oldest pending connection closed to make room), closed (the peer left first), "
    "tls (handshake failed), pdu (a PDU of unknown type or beyond the limits inside an association).",
    ["reason"],
    registry=REGISTRY,
)
_CONNECTION_CHECKS = Counter(
    "dicom_node_connection_checks",
    "DICOM connections the peer closed without sending a byte: TCP health checks (Kubernetes tcpSocket probes, load "
    "balancers) and connect scans. Not refusals (connections_refused counts those): they held no association slot, "
    "no thread, and could not have sent anything.",
    registry=REGISTRY,
)
_STEP_SECONDS = Histogram(
    "dicom_node_step_duration_seconds",
    "Duration of each pipeline step of a job.",
    ["step"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
_EXPORT_ATTEMPTS = Counter(
    "dicom_node_export_attempts",
    "C-STORE attempts of result objects by destination and outcome, the export's state after the attempt: sent, "
    "pending (transient failure, tried again later) or failed (refused, or given up). Failures: outcome != sent.",
    ["destination", "outcome"],
    registry=REGISTRY,
)
_JOBS_FINISHED = Counter(
    "dicom_node_jobs_finished",
    "Jobs a worker of this process ended, by the state it left them in: done, failed or skipped (the failure ratio's parts).",
    ["state"],
    registry=REGISTRY,
)
_MODEL_READY = Gauge(
    "dicom_node_model_ready",
    "1 when the model answered its last check (start-up, each /ready), 0 when it was unavailable or did not match its contract.",
    ["model"],
    registry=REGISTRY,
)
_INFERENCE_SECONDS = Histogram(
    "dicom_node_inference_seconds",
    "Latency of one inference request, by model and backend (embedded, triton-http, triton-grpc).",
    ["model", "backend"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)


def count_association(outcome: str) -> None:
    """An association request was 'accepted' or 'rejected'."""
    _ASSOCIATIONS.labels(outcome).inc()


def count_connection_refused(reason: str) -> None:
    """A connection was closed by the node's front door or PDU guard (see the metric's help for the reasons)."""
    _CONNECTIONS_REFUSED.labels(reason).inc()


def count_connection_check() -> None:
    """A connection was opened and closed by its peer without a byte: a TCP health check."""
    _CONNECTION_CHECKS.inc()


def count_instance(nbytes: int) -> None:
    """An instance was stored durably and acknowledged."""
    _INSTANCES.inc()
    _BYTES.inc(nbytes)


def count_refused(status: int) -> None:
    """A C-STORE was answered with failure `status` (labelled as hex, the way the DICOM standard writes it)."""
    _REFUSED.labels(f"0x{status:04X}").inc()


def observe_step(step: str, seconds: float) -> None:
    """A pipeline step of a job took `seconds` (the worker calls this with each entry of `Job.steps`)."""
    _STEP_SECONDS.labels(step).observe(seconds)


def count_export(destination: str, outcome: str) -> None:
    """One C-STORE attempt to `destination` left its export `outcome`: sent, pending or failed (what Outbox.record returns)."""
    _EXPORT_ATTEMPTS.labels(destination, outcome).inc()


def count_job_finished(state: str) -> None:
    """A worker ended a job as done, failed or skipped."""
    _JOBS_FINISHED.labels(state).inc()


def set_model_ready(model: str, ready: bool) -> None:
    """The last check of `model` passed (True) or not: what the Triton-unreachable alert watches."""
    _MODEL_READY.labels(model).set(1 if ready else 0)


def observe_inference(model: str, backend: str, seconds: float) -> None:
    """One inference request to `model` on `backend` took `seconds`."""
    _INFERENCE_SECONDS.labels(model, backend).observe(seconds)


class CertificateCollector(Collector):
    """Seconds until each watched TLS certificate expires, computed at each scrape (negative once expired)."""

    def __init__(self) -> None:
        self.not_after: dict[str, float] = {}  # endpoint -> Unix time

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "dicom_node_tls_certificate_expiry_seconds",
            "Seconds until the node's TLS certificate expires (negative: expired), by endpoint: dicom (dicom.tls_cert_file) "
            "or http (http.tls_cert_file). Alert well before 0: peers refuse an expired certificate.",
            labels=["endpoint"],
        )
        now = time.time()
        for endpoint, not_after in sorted(self.not_after.items()):
            gauge.add_metric([endpoint], not_after - now)
        yield gauge


_CERTIFICATES = CertificateCollector()
REGISTRY.register(_CERTIFICATES)


def watch_certificate(endpoint: str, not_after: float) -> None:
    """Export the seconds left until `endpoint`'s certificate expires at `not_after` (Unix time)."""
    _CERTIFICATES.not_after[endpoint] = not_after


class DiskCollector(Collector):
    """Free space of the data dir's disk and the level below which the SCP refuses instances (dicom.min_free_disk_mb)."""

    def __init__(self, data_dir: Path, refuse_below_mb: int) -> None:
        self._data_dir = data_dir
        self._refuse_below = refuse_below_mb * 2**20

    def collect(self) -> Iterator[Metric]:
        try:
            free = shutil.disk_usage(self._data_dir).free
        except OSError:  # no sample rather than a scrape error: /ready says why
            return
        yield GaugeMetricFamily("dicom_node_disk_free_bytes", "Free bytes on the data dir's file system.", value=free)
        yield GaugeMetricFamily(
            "dicom_node_disk_refuse_below_bytes", "dicom.min_free_disk_mb in bytes: below it the SCP refuses instances (0xA700).", value=self._refuse_below
        )


def exposition(database: CollectorRegistry) -> bytes:
    """The text served at /metrics: this process's event metrics followed by the database's state metrics."""
    return generate_latest(REGISTRY) + generate_latest(database)


def database_registry(database: Collector, data_dir: Path, refuse_below_mb: int) -> CollectorRegistry:
    """The state metrics read at scrape time: the database's (`store/gauges.py`) and the data dir's disk."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(database)
    registry.register(DiskCollector(data_dir, refuse_below_mb))
    return registry

