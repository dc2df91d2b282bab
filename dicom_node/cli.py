"""The `dicom-node` command line."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from sqlalchemy import select

from dicom_node.config import Config, ConfigError, Destination, load_config
from dicom_node.logs import setup_logging
from dicom_node.store.files import PRIVATE_UMASK
from dicom_node.web.rows import job_row
from dicom_node.net.address import DicomAddress, parse_address

app = typer.Typer(add_completion=False, no_args_is_help=True, help="DICOM AI node: receive CT series, run the COVID-19 pipeline, send results to the PACS.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema (alembic migrations).")
jobs_app = typer.Typer(no_args_is_help=True, help="Series jobs.")
exports_app = typer.Typer(no_args_is_help=True, help="Results queued for, sent to or refused by the destinations.")


@app.callback()
def _private_files() -> None:
    """Every command creates files (the index, its journal) readable by the service user only, as the node does."""
    os.umask(PRIVATE_UMASK)


app.add_typer(db_app, name="db")
app.add_typer(jobs_app, name="jobs")
app.add_typer(exports_app, name="exports")

ConfigOption = typer.Option(None, "--config", "-c", help="TOML config file (see config/dicom-node.toml).", envvar="DICOM_NODE_CONFIG")
DataDirOption = typer.Option(None, "--data-dir", help="Data directory (instances, results, SQLite index).")


def _config(path: Optional[Path], overrides: dict[str, Any] | None = None) -> Config:
    try:
        return load_config(path, overrides or {})
    except ConfigError as exc:
        typer.echo(f"dicom-node: {exc}", err=True)
        raise typer.Exit(2) from exc


def _node_overrides(data_dir: Optional[Path]) -> dict[str, Any]:
    return {"node": {"data_dir": str(data_dir)}} if data_dir else {}


def _address(text: str) -> DicomAddress:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def serve(
    ae: Optional[str] = typer.Option(None, "--ae", help="Called AE title of this node (bound to the COVID-19 CT pipeline)."),
    port: Optional[int] = typer.Option(None, "--port", help="DICOM port (default 11112)."),
    export_to: Optional[list[str]] = typer.Option(
        None, "--export-to", help="Send COVID-19 CT results to AE@host:port (repeatable); the destination is named after the AE title."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=0, help="Pipeline worker threads (default jobs.workers); 0 with --no-export: receive only."
    ),
    no_export: bool = typer.Option(False, "--no-export", help="Do not send results from this process (another process does)."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Run the node: Storage SCP, job scheduler, pipeline workers, exporter."""
    overrides = _node_overrides(data_dir)
    dicom: dict[str, Any] = {}
    if ae:
        dicom["called_aes"] = [{"ae_title": ae, "pipeline": "covid19_ct"}]
    if port is not None:
        dicom["port"] = port
    if dicom:
        overrides["dicom"] = dicom
    _run_node(_config(config, overrides | _work_overrides(workers, no_export)), export_to, receive=True)


@app.command()
def worker(
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Pipeline worker threads (default jobs.workers)."),
    no_export: bool = typer.Option(False, "--no-export", help="Do not send results from this process (another process does)."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Run pipeline workers and export senders without the Storage SCP (scale-out: any number beside `serve`)."""
    _run_node(_config(config, _node_overrides(data_dir) | _work_overrides(workers, no_export)), [], receive=False)


def _work_overrides(workers: Optional[int], no_export: bool) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if workers is not None:
        overrides["jobs"] = {"workers": workers}
    if no_export:
        overrides["export"] = {"enabled": False}
    return overrides


def _run_node(cfg: Config, export_to: Optional[list[str]], receive: bool) -> None:
    """Start a node process with these roles and run it until SIGTERM or Ctrl-C."""
    for text in export_to or []:
        address = _address(text)
        try:
            cfg.add_destination(Destination(name=address.ae_title, ae_title=address.ae_title, host=address.host, port=address.port))
        except ConfigError as exc:
            typer.echo(f"dicom-node: --export-to {text}: {exc}", err=True)
            raise typer.Exit(2) from exc
    setup_logging(cfg.node.log_level, cfg.node.log_json)
    from dicom_node.node import Node
    from dicom_node.store.shared_storage import StorageError

    node = Node(cfg, receive=receive)
    try:
        node.start()
    except (OSError, StorageError) as exc:
        typer.echo(f"dicom-node: cannot start: {exc}", err=True)
        node.stop()
        raise typer.Exit(1) from exc
    stop = {"requested": False}

    def _request_stop(signum: int, _frame: Any) -> None:
        stop["requested"] = True
        node.stopping.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    # Wake up now and then: a signal taken by another thread does not interrupt a wait without timeout,
    # so the handler would only run once something else woke the main thread.
    while not node.stopping.wait(0.5):
        pass
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


def _sessions(cfg: Config):  # type: ignore[no-untyped-def]
    from dicom_node.store.db import make_engine, make_sessionmaker, upgrade

    upgrade(cfg.database_url)
    return make_sessionmaker(make_engine(cfg.database_url))


def _print_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


@jobs_app.command("list")
def jobs_list(
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    state: Optional[str] = typer.Option(None, "--state", help="Only jobs in this state."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """List jobs, newest first."""
    from dicom_node.store.models import Job

    cfg = _config(config, _node_overrides(data_dir))
    with _sessions(cfg)() as session:
        query = select(Job).order_by(Job.id.desc())
        if state:
            query = query.where(Job.state == state)
        rows = [job_row(job) for job in session.scalars(query)]
    _print_rows(rows, as_json, ["id", "state", "instances", "attempts", "series_instance_uid", "reason"])


@jobs_app.command("show")
def jobs_show(job_id: int, data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
    """One job, with its steps and result, as JSON."""
    from dicom_node.store.models import Job

    cfg = _config(config, _node_overrides(data_dir))
    with _sessions(cfg)() as session:
        job = session.get(Job, job_id)
        if job is None:
            typer.echo(f"dicom-node: no job {job_id}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(job_row(job), indent=2, default=str))


@jobs_app.command("retry")
def jobs_retry(job_id: int, data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
    """Queue a finished (failed, skipped or done) job again."""
    from dicom_node.store.jobs import JobQueue

    cfg = _config(config, _node_overrides(data_dir))
    if not JobQueue(_sessions(cfg), cfg.node.name).retry(job_id):
        typer.echo(f"dicom-node: job {job_id} does not exist or is not finished", err=True)
        raise typer.Exit(1)
    typer.echo(f"job {job_id} queued")


@exports_app.command("list")
def exports_list(
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    state: Optional[str] = typer.Option(None, "--state", help="Only exports in this state (pending, sending, sent, failed, cancelled)."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """List exports, newest first, with the destination's last DIMSE status and the reason (the API's rows)."""
    from dicom_node.store.models import Export
    from dicom_node.web.rows import export_row

    cfg = _config(config, _node_overrides(data_dir))
    with _sessions(cfg)() as session:
        query = select(Export).order_by(Export.id.desc())
        if state:
            query = query.where(Export.state == state)
        rows = [export_row(row) for row in session.scalars(query)]
    if not as_json:  # statuses read as the standard writes them
        rows = [row | {"last_status": "" if row["last_status"] is None else f"0x{row['last_status']:04X}"} for row in rows]
    _print_rows(rows, as_json, ["id", "job_id", "destination", "state", "attempts", "last_status", "sop_instance_uid", "last_error"])


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
        typer.echo("dicom-node: give an export ID or --all-failed", err=True)
        raise typer.Exit(2)
    cfg = _config(config, _node_overrides(data_dir))
    outbox = Outbox(_sessions(cfg), cfg.export, cfg.node.data_dir)
    if all_failed:
        typer.echo(f"{outbox.retry_failed()} export(s) queued again")
        return
    assert export_id is not None
    if not outbox.retry(export_id):
        typer.echo(f"dicom-node: export {export_id} does not exist or is not failed or sent", err=True)
        raise typer.Exit(1)
    typer.echo(f"export {export_id} queued again")


CallingAeOption = typer.Option(None, "--calling-ae", help="Our AE title (default: export.calling_ae_title).")


def _export_settings(config: Optional[Path], calling_ae: Optional[str]):  # type: ignore[no-untyped-def]
    return _config(config, {"export": {"calling_ae_title": calling_ae}} if calling_ae else {}).export


@app.command()
def echo(
    address: str = typer.Argument(..., help="Peer as AE@host:port."),
    calling_ae: Optional[str] = CallingAeOption,
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """C-ECHO a DICOM peer: is it there and does it accept us?"""
    from dicom_node.net.scu import NoAssociation, Scu

    peer = _address(address)
    try:
        result = Scu(_export_settings(config, calling_ae)).echo(peer)
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
    paths: list[Path] = typer.Argument(..., help="DICOM files or folders (searched recursively).", exists=True),
    to: str = typer.Option(..., "--to", help="Peer as AE@host:port."),
    calling_ae: Optional[str] = CallingAeOption,
    as_json: bool = typer.Option(False, "--json", help="JSON summary on stdout (progress still on stderr)."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """C-STORE files to a DICOM peer as stored (no recompression), with progress; non-zero exit if any failed."""
    from dicom_node.sending import send_files

    peer = _address(to)
    summary = send_files(paths, peer, _export_settings(config, calling_ae), quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        typer.echo(summary.text())
    if summary.unreachable:
        typer.echo(f"dicom-node: {summary.unreachable}", err=True)
    if not summary.ok:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="dicom-node")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
