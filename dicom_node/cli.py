"""The `dicom-node` command line."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal, Optional

import typer
from sqlalchemy import select

from dicom_node.cli_base import ConfigOption, DataDirOption, JsonOption, _config, _fail, _node_overrides, _print_rows, _rounded, _sessions, _typer, app
from dicom_node.config import Config, ConfigError, Destination
from dicom_node.logs import setup_logging
from dicom_node.store.rows import job_row
from dicom_node.net.address import DicomAddress, parse_address

JobState = Literal["queued", "running", "done", "failed", "skipped", "superseded"]
ExportState = Literal["pending", "sending", "sent", "failed", "cancelled", "superseded"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


db_app = _typer("Database schema (alembic migrations).")
jobs_app = _typer("Series jobs.")
exports_app = _typer("Results queued for, sent to or refused by the destinations.")
pseudonyms_app = _typer("Pseudonyms sent to de-identified destinations (docs/deidentification.md).")
app.add_typer(db_app, name="db")
app.add_typer(jobs_app, name="jobs")
app.add_typer(exports_app, name="exports")
app.add_typer(pseudonyms_app, name="pseudonyms")

def _flag_overrides(data_dir: Optional[Path], sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings given as flags (None: not given), over the file and the environment."""
    overrides = _node_overrides(data_dir)
    for section, values in sections.items():
        given = {key: value for key, value in values.items() if value is not None}
        if given:
            overrides[section] = {**overrides.get(section, {}), **given}
    return overrides


def _address(text: str) -> DicomAddress:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def serve(
    ae: Optional[str] = typer.Option(None, "--ae", metavar="AE", help="Called AE title of this node (bound to the first pipeline, COVID-19 CT)."),
    port: Optional[int] = typer.Option(None, "--port", metavar="PORT", help="DICOM port (default 11112)."),
    calling_ae: Optional[str] = typer.Option(None, "--calling-ae", metavar="AE", help="Our AE title when sending results (default: the called AE)."),
    export_to: Optional[list[str]] = typer.Option(
        None, "--export-to", metavar="AE@HOST:PORT", help="Send every pipeline's results there (repeatable); the destination is named after the AE title."
    ),
    http_host: Optional[str] = typer.Option(None, "--http-host", metavar="ADDRESS", help="Address of the web page and API (default 127.0.0.1)."),
    http_port: Optional[int] = typer.Option(None, "--http-port", metavar="PORT", help="Port of the web page and API (default 8080; 0: off)."),
    log_level: Optional[LogLevel] = typer.Option(None, "--log-level", case_sensitive=False, help="Log level (default INFO)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=0, metavar="N", help="Pipeline worker threads (default jobs.workers); 0 with --no-export: receive only."
    ),
    no_export: bool = typer.Option(False, "--no-export", help="Do not send results from this process (another process does)."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Run the node: Storage SCP, job scheduler, pipeline workers, exporter, web page."""
    sections = {
        "dicom": {"called_aes": [{"ae_title": ae}] if ae else None, "port": port},
        "export": {"calling_ae_title": calling_ae, "enabled": False if no_export else None},
        "jobs": {"workers": workers},
        "http": {"host": http_host, "port": http_port},
        "node": {"log_level": log_level.upper() if log_level else None},
    }
    _run_node(_config(config, _flag_overrides(data_dir, sections)), export_to, receive=True)


@app.command()
def worker(
    workers: Optional[int] = typer.Option(None, "--workers", min=0, metavar="N", help="Pipeline worker threads (default jobs.workers)."),
    no_export: bool = typer.Option(False, "--no-export", help="Do not send results from this process (another process does)."),
    http_port: Optional[int] = typer.Option(
        None, "--http-port", metavar="PORT", help="Port of this process's API and /metrics (default http.port; 0: none). Beside `serve` on one host: another port."
    ),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Run pipeline workers and export senders without the Storage SCP (scale-out: any number beside `serve`)."""
    sections = {"jobs": {"workers": workers}, "export": {"enabled": False if no_export else None}, "http": {"port": http_port}}
    _run_node(_config(config, _flag_overrides(data_dir, sections)), [], receive=False)


def _run_node(cfg: Config, export_to: Optional[list[str]], receive: bool) -> None:
    """Start a node process with these roles and run it until SIGTERM or Ctrl-C."""
    for text in export_to or []:
        address = _address(text)
        try:
            cfg.add_destination(Destination(name=address.ae_title, ae_title=address.ae_title, host=address.host, port=address.port))
        except ConfigError as exc:
            _fail(f"--export-to {text}: {exc}", 2)
    setup_logging(cfg.node.log_level, cfg.node.log_json)
    from dicom_node.node import Node
    from dicom_node.stop_signals import StopSignals
    from dicom_node.store.shared_storage import StorageError

    node = Node(cfg, receive=receive)
    # Before start(): Ctrl-C while the node starts stops it once started, cleanly, instead of a traceback.
    stop_signals = StopSignals()
    try:
        node.start(stop_signals.requested)
    except (OSError, StorageError) as exc:
        node.stop()
        logging.getLogger(__name__).debug("start-up failed", exc_info=True)
        _fail(f"cannot start: {exc}")
    stop_signals.wait(node.stopping)
    node.stop()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head"), data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
    """Create or upgrade the schema."""
    from dicom_node.store.db import upgrade

    cfg = _config(config, _node_overrides(data_dir))
    upgrade(cfg.database_url, revision)
    typer.echo(f"schema at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. -1."), data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
    """Step the schema back."""
    from dicom_node.store.db import downgrade

    cfg = _config(config, _node_overrides(data_dir))
    downgrade(cfg.database_url, revision)
    typer.echo(f"schema at {revision}")


@app.command()
def backup(
    destination: Path = typer.Argument(..., metavar="FOLDER", help="A new or empty folder, best on another disk."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Back up the index and the files it names while the node runs (restore: docs/operations.md)."""
    from dicom_node.store.backup import BackupError, backup as make_backup

    cfg = _config(config, _node_overrides(data_dir))
    try:
        report = make_backup(cfg.database_url, Path(cfg.node.data_dir), destination)
    except BackupError as exc:
        _fail(str(exc))
    if report.missing:  # their rows are in the backup without files
        _fail(f"incomplete {report.text()}; run the backup again")
    typer.echo(report.text())


def _result_text(pipeline: str, result: dict[str, Any]) -> str:
    """A done job's answer in one cell, as its pipeline's manifest puts it (`ResultManifest.one_line`)."""
    from dicom_node.pipelines.registry import read_manifest

    manifest = read_manifest(pipeline, result)
    return manifest.one_line() if manifest else ""


def _when(iso: str | None) -> str:
    """ISO 8601 UTC to the second, e.g. 2026-12-01 22:30:12Z."""
    return f"{iso[:19].replace('T', ' ')}Z" if iso else ""


@jobs_app.command("list")
def jobs_list(
    as_json: bool = JsonOption,
    state: Optional[JobState] = typer.Option(None, "--state", help="Only jobs in this state."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """List jobs, newest first: when, whose, what state, what result."""
    from dicom_node.store.models import Job

    cfg = _config(config, _node_overrides(data_dir))
    with _sessions(cfg)() as session:
        query = select(Job).order_by(Job.id.desc())
        if state:
            query = query.where(Job.state == state)
        rows = [job_row(job) for job in session.scalars(query)]
    if not as_json:
        rows = [
            row | {"created": _when(row["created_at"]), "patient": f"{row['patient_name']} ({row['patient_id']})", "result": _result_text(row["pipeline"], row["result"])}
            for row in rows
        ]
    _print_rows(rows, as_json, ["id", "created", "state", "patient", "instances", "result", "series_instance_uid", "reason"])


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [pair for key, item in value.items() for pair in _flatten(item, f"{prefix}.{key}" if prefix else str(key))]
    return [(prefix, "" if value is None else value)]


@jobs_app.command("show")
def jobs_show(job_id: int, as_json: bool = JsonOption, data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
    """One job, with its steps and result."""
    from dicom_node.store.models import Job

    cfg = _config(config, _node_overrides(data_dir))
    with _sessions(cfg)() as session:
        job = session.get(Job, job_id)
        if job is None:
            _fail(f"no job {job_id}")
        row = job_row(job)
    if as_json:  # exact, as the API gives them
        typer.echo(json.dumps(row, indent=2, default=str))
        return
    pairs = _flatten(_rounded(row))
    width = max(len(key) for key, _ in pairs)
    for key, value in pairs:
        typer.echo(f"{key.ljust(width)}  {value}")


@jobs_app.command("retry")
def jobs_retry(job_id: int, data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
    """Run a finished (failed, skipped or done) job again.

    A done job's results then also go to destinations added since it ran: the
    way to send old results to a new PACS (those that have them get nothing again).
    """
    from dicom_node.store.jobs import ACTIVE_STATES, JobQueue
    from dicom_node.store.models import Job

    cfg = _config(config, _node_overrides(data_dir))
    sessions = _sessions(cfg)
    with sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        _fail(f"no job {job_id}")
    if job.state in ACTIVE_STATES:
        _fail(f"job {job_id} is {job.state} already: wait until it is done, failed or skipped")
    if job.state == "superseded":
        _fail(f"job {job_id} was superseded by job {job.superseded_by} (newer data for its series): retry that one")
    if not JobQueue(sessions, cfg.node.name).retry(job_id):
        _fail(f"job {job_id} changed state meanwhile; look again with `dicom-node jobs show {job_id}`")
    typer.echo(f"job {job_id} queued")


@exports_app.command("list")
def exports_list(
    as_json: bool = JsonOption,
    state: Optional[ExportState] = typer.Option(None, "--state", help="Only exports in this state."),
    job: Optional[int] = typer.Option(None, "--job", metavar="ID", help="Only the exports of this job."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """List exports, newest first: object type (SEG, SR, SC, KO), the destination's last DIMSE status and the reason (the API's rows)."""
    from dicom_node.store.models import Export
    from dicom_node.store.rows import export_row

    cfg = _config(config, _node_overrides(data_dir))
    with _sessions(cfg)() as session:
        query = select(Export).order_by(Export.id.desc())
        if state:
            query = query.where(Export.state == state)
        if job is not None:
            query = query.where(Export.job_fk == job)
        rows = [export_row(row) for row in session.scalars(query)]
    if not as_json:  # statuses read as the standard writes them
        rows = [row | {"last_status": "" if row["last_status"] is None else f"0x{row['last_status']:04X}"} for row in rows]
    _print_rows(rows, as_json, ["id", "job_id", "object_type", "destination", "state", "attempts", "last_status", "sop_instance_uid", "last_error"])


@exports_app.command("retry")
def exports_retry(
    export_id: Optional[int] = typer.Argument(None, help="Export to send again (failed or sent)."),
    all_failed: bool = typer.Option(False, "--all-failed", help="Send every failed export again."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Queue failed exports again, with a fresh retry horizon."""
    from dicom_node.store.outbox import Outbox

    if (export_id is None) == (not all_failed):
        _fail("give an export ID or --all-failed", 2)
    cfg = _config(config, _node_overrides(data_dir))
    outbox = Outbox(_sessions(cfg), cfg.export, cfg.node.data_dir)
    if all_failed:
        typer.echo(f"{outbox.retry_failed()} export(s) queued again")
        return
    assert export_id is not None
    if not outbox.retry(export_id):
        _fail(f"export {export_id} does not exist or is not failed or sent")
    typer.echo(f"export {export_id} queued again")


@exports_app.command("resend")
def exports_resend(
    job_id: int = typer.Argument(..., help="A done job."),
    to: str = typer.Option(..., "--to", metavar="DESTINATION", help="Name of a configured destination, e.g. one added since the job ran."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Send a done job's results (SEG, SR, summary page, key images) to a destination: how a new PACS gets old results.

    A destination with include_source also gets the source series; one with a de-identification profile gets
    everything de-identified as it is sent.

    Re-sending the study itself does nothing (the node keeps identical instances once); this queues the results
    for the running node's exporter.
    """
    from dicom_node.pipelines.registry import read_manifest
    from dicom_node.store.models import Job
    from dicom_node.store.outbox import Outbox, ResultObject

    from dicom_node.cli_config import live_config

    cfg = live_config(_config(config, _node_overrides(data_dir)))
    names = sorted(dest.name for dest in cfg.destinations)
    if to not in names:
        _fail(f"destination {to!r} is not in the configuration (configured: {', '.join(names) or 'none'}): add it with `dicom-node destination add`", 2)
    sessions = _sessions(cfg)
    with sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        _fail(f"no job {job_id}")
    if job.state != "done":
        _fail(f"job {job_id} is {job.state}: only a done job has results to send")
    manifest = read_manifest(job.pipeline, job.result)
    objects = [ResultObject.from_file(Path(path), cfg.node.data_dir) for path in (manifest.dicom_files() if manifest else [])]
    outbox = Outbox(sessions, cfg.export, cfg.node.data_dir)
    with_source = {to} if cfg.destination(to).include_source else set()
    with sessions.begin() as session:
        added = outbox.enqueue_job_in(session, job_id, job.series_fk, objects, [to], with_source)
    if added:
        typer.echo(f"{added} result object(s) of job {job_id} queued for {to}")
    else:
        typer.echo(f"nothing queued: the results of job {job_id} were already queued or sent to {to} (`dicom-node exports retry ID` sends one again)")


@pseudonyms_app.command("reidentify")
def pseudonyms_reidentify(
    pseudonym: str = typer.Argument(..., help="A value a de-identified destination holds: UID, Patient ID or accession number."),
    as_json: bool = JsonOption,
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """What a pseudonym stands for (and, for a patient, how many days the dates were moved back).

    For an authorised user on the node: the mapping is in the index only, never exported. Each look-up is logged.
    """
    from dicom_node.store.pseudonyms import PseudonymStore

    cfg = _config(config, _node_overrides(data_dir))
    found = PseudonymStore(_sessions(cfg)).reidentify(pseudonym)
    logging.getLogger("dicom_node.reidentify").warning("re-identification of %s by %s: %d mapping(s)", pseudonym, getpass.getuser(), len(found))
    if not found:
        _fail(f"{pseudonym!r} is no pseudonym this node has sent")
    if as_json:
        typer.echo(json.dumps([dict(kind=p.kind, original=p.original, pseudonym=p.pseudonym) for p in found], indent=2))
        return
    for p in found:
        typer.echo(f"{p.kind:16} {p.original.replace(chr(0x1F), ' / ')}  ({p.pseudonym})")


CallingAeOption = typer.Option(None, "--calling-ae", metavar="AE", help="Our AE title (default: export.calling_ae_title, else the node's called AE).")
TlsOption = typer.Option(False, "--tls", help="DICOM TLS; the peer's certificate is verified against --tls-ca or the system's CAs.")
TlsCaOption = typer.Option(None, "--tls-ca", help="CA bundle (PEM) that verifies the peer's certificate; implies --tls.", exists=True)
TlsCertOption = typer.Option(None, "--tls-cert", help="Our client certificate (PEM), for peers that require one; implies --tls.", exists=True)
TlsKeyOption = typer.Option(None, "--tls-key", help="Private key (PEM) of --tls-cert.", exists=True)


def _export_settings(config: Optional[Path], calling_ae: Optional[str]):  # type: ignore[no-untyped-def]
    return _config(config, {"export": {"calling_ae_title": calling_ae}} if calling_ae else {}).export


def _tls(peer: DicomAddress, tls: bool, ca: Optional[Path], cert: Optional[Path], key: Optional[Path]):  # type: ignore[no-untyped-def]
    """The TLS arguments of `echo` and `send` (None: plain TCP), built as for a configured destination."""
    if not (tls or ca or cert):
        return None
    from dicom_node.net.tls import client_tls

    if key and not cert:
        raise typer.BadParameter("--tls-key needs --tls-cert")
    try:
        return client_tls(peer.host, ca and str(ca), cert and str(cert), key and str(key))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise typer.BadParameter(f"cannot use the TLS certificate files: {exc}") from exc


@app.command()
def echo(
    address: str = typer.Argument(..., metavar="AE@HOST:PORT", help="The peer."),
    calling_ae: Optional[str] = CallingAeOption,
    as_json: bool = JsonOption,
    tls: bool = TlsOption,
    tls_ca: Optional[Path] = TlsCaOption,
    tls_cert: Optional[Path] = TlsCertOption,
    tls_key: Optional[Path] = TlsKeyOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """C-ECHO a DICOM peer: is it there and does it accept us?"""
    from dicom_node.net.scu import NoAssociation, Scu

    peer = _address(address)
    try:
        result = Scu(_export_settings(config, calling_ae), _tls(peer, tls, tls_ca, tls_cert, tls_key)).echo(peer)
    except NoAssociation as exc:
        typer.echo(json.dumps({"peer": str(peer), "ok": False, "error": str(exc)}) if as_json else f"dicom-node: {exc}", err=not as_json)
        raise typer.Exit(1) from exc
    ok = result.status == 0
    if as_json:
        typer.echo(json.dumps({"peer": str(peer), "ok": ok, "status": f"0x{result.status:04X}", "seconds": round(result.seconds, 4)}))
    else:
        typer.echo(f"{peer}: C-ECHO status 0x{result.status:04X} in {result.seconds * 1000:.0f} ms")
    if not ok:
        raise typer.Exit(1)


@app.command()
def send(
    paths: list[Path] = typer.Argument(..., metavar="PATH...", help="DICOM files or folders (searched recursively).", exists=True),
    to: str = typer.Option(..., "--to", metavar="AE@HOST:PORT", help="The peer."),
    calling_ae: Optional[str] = CallingAeOption,
    as_json: bool = typer.Option(False, "--json", help="JSON summary on stdout (progress still on stderr)."),
    tls: bool = TlsOption,
    tls_ca: Optional[Path] = TlsCaOption,
    tls_cert: Optional[Path] = TlsCertOption,
    tls_key: Optional[Path] = TlsKeyOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """C-STORE files to a DICOM peer as stored (no recompression), with progress; non-zero exit if any failed."""
    from dicom_node.sending import send_files

    peer = _address(to)
    tls_args = _tls(peer, tls, tls_ca, tls_cert, tls_key)
    summary = send_files(paths, peer, _export_settings(config, calling_ae), quiet=as_json, tls=tls_args)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        typer.echo(summary.text())
    if summary.unreachable:
        typer.echo(f"dicom-node: {summary.unreachable}", err=True)
    if not summary.ok:
        raise typer.Exit(1)


PROCESS_EXIT = {"done": 0, "failed": 1, "cancelled": 3}


def _progress(status: dict[str, Any]) -> str:
    counts = status["instances"]
    line = f"{status['state']}: {counts['received']} of {counts['expected']} instance(s) retrieved, {counts['alreadyPresent']} already here"
    jobs = [s["job"] for s in status["series"] if s["job"]]
    if jobs:
        line += "; jobs " + ", ".join(f"{job['id']} {job['state']}" for job in jobs)
    if status["exports"]:
        sent = sum(e["state"] == "sent" for e in status["exports"])
        line += f"; {sent} of {len(status['exports'])} result object(s) sent"
    return line


@app.command()
def process(
    source: str = typer.Option(..., "--from", metavar="PACS", help="A configured source's name, or AE@host:port (retrieved by C-MOVE)."),
    study: Optional[str] = typer.Option(None, "--study", metavar="UID", help="StudyInstanceUID of the study to process."),
    series: Optional[str] = typer.Option(None, "--series", metavar="UID", help="Only this series of --study."),
    accession: Optional[str] = typer.Option(None, "--accession", metavar="NUMBER", help="The study with this AccessionNumber."),
    patient_id: Optional[str] = typer.Option(None, "--patient-id", metavar="ID", help="The studies of this PatientID (with --date-from/--date-to)."),
    date_from: Optional[str] = typer.Option(None, "--date-from", metavar="YYYYMMDD", help="Studies on or after this date (--patient-id)."),
    date_to: Optional[str] = typer.Option(None, "--date-to", metavar="YYYYMMDD", help="Studies on or before this date (--patient-id)."),
    to: Optional[list[str]] = typer.Option(None, "--to", metavar="DESTINATION", help="Send the results there (repeatable; default: the pipeline's destinations)."),
    force: bool = typer.Option(False, "--force", help="Run again series whose results of this algorithm version exist."),
    transaction_id: Optional[str] = typer.Option(None, "--transaction-id", metavar="ID", help="The request's id (default: a new one)."),
    timeout: float = typer.Option(3600.0, "--timeout", metavar="SECONDS", help="Stop waiting after this long (the request goes on)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Queue the request and exit."),
    as_json: bool = JsonOption,
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Process a study that is in a PACS: the running node finds it, retrieves what it lacks, runs the pipeline and
    exports the results. Prints progress; exit code 0 done, 1 failed, 2 invalid request, 3 cancelled, 4 still running at --timeout."""
    import time
    import uuid

    from dicom_node.inference_request import parse_request, request_status
    from dicom_node.store.inference_requests import InferenceRequests
    from dicom_node.store.models import InferenceRequest

    if sum(bool(value) for value in (study, accession, patient_id)) != 1:
        _fail("give one of --study, --accession or --patient-id", 2)
    if study:
        details: dict[str, Any] = {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": study, "series": [{"SeriesInstanceUID": series}] if series else []}]}
    elif accession:
        details = {"type": "ACCESSION_NUMBER", "accessionNumbers": [accession]}
    else:
        details = {"type": "DICOM_PATIENT_ID", "PatientID": patient_id, "studyDateFrom": date_from or "", "studyDateTo": date_to or ""}
    body = {
        "transactionID": transaction_id or f"cli-{uuid.uuid4()}",
        "inputMetadata": {"details": details},
        "inputResources": [{"interface": "DIMSE", "connectionDetails": {"name": source}}],
        "outputResources": [{"interface": "DIMSE", "connectionDetails": {"name": name}} for name in to or []],
        "force": force,
    }
    cfg = _config(config, _node_overrides(data_dir))
    spec = parse_request(body, cfg)
    if isinstance(spec, list):
        _fail("invalid request: " + "; ".join(f"{p.pointer}: {p.detail}" for p in spec), 2)
    sessions = _sessions(cfg)
    requests = InferenceRequests(sessions)
    _, created = requests.create(spec)
    typer.echo(f"request {spec.transaction_id} {'queued' if created else 'already exists'}", err=True)
    deadline = time.monotonic() + timeout
    shown = ""
    while True:
        with sessions() as session:
            row = session.scalar(select(InferenceRequest).where(InferenceRequest.transaction_id == spec.transaction_id))
            status = request_status(session, row, requests, cfg.export.calling_ae_title)
        line = _progress(status)
        if line != shown:
            typer.echo(line, err=True)
            shown = line
        if status["state"] in PROCESS_EXIT or no_wait or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if as_json:
        typer.echo(json.dumps(status, indent=2, default=str))
    else:
        for item in status["series"]:
            result = _result_text(item["job"]["pipeline"], item["job"]["result"]) if item["job"] else ""
            reason = f": {item['reason']}" if item["reason"] else ""
            typer.echo(f"series {item['seriesInstanceUID']}: {item['state']}{f' ({result})' if result else ''}{reason}")
        for error in status["errors"]:
            typer.echo(f"error ({error.get('statusHex') or 'no DICOM status'}): {error['message']}")
        if status["partial"]:
            typer.echo("partial: some instances the PACS counted did not come; what came was processed")
    if no_wait:
        return
    raise typer.Exit(PROCESS_EXIT.get(status["state"], 4))


from dicom_node import cli_config  # noqa: E402,F401  (its commands: ae, source, destination, config)


def _debug() -> bool:
    return logging.getLogger().isEnabledFor(logging.DEBUG) or os.environ.get("DICOM_NODE_NODE__LOG_LEVEL", "").upper() == "DEBUG"


def main() -> None:
    """The console entry: a failure is one line that says what went wrong; the traceback only at debug level."""
    try:
        app(prog_name="dicom-node")
    except KeyboardInterrupt:
        typer.echo("dicom-node: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if _debug():
            raise
        typer.echo(f"dicom-node: {type(exc).__name__}: {exc} (DICOM_NODE_NODE__LOG_LEVEL=DEBUG shows the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
