"""What every `dicom-node` command module shares: the root Typer app, the common options, errors as one line,
the configuration and the index as commands open them, and rows as tables (`cli.py` and `cli_config.py` import
it; neither imports the other's helpers, so that adding a command module cannot make an import loop)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from dicom_node import __version__
from dicom_node.config import Config, ConfigError, load_config
from dicom_node.store.files import PRIVATE_UMASK


def _typer(help: str) -> typer.Typer:
    """Click's plain help (no type tags), `-h` as well as `--help`, and our own one-line errors instead of Typer's tracebacks."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _typer("DICOM AI node: receive CT series, run its pipelines (COVID-19 CT, ...), send results to the PACS.")

ConfigOption = typer.Option(None, "--config", "-c", metavar="FILE", help="TOML config file (see config/dicom-node.toml).", envvar="DICOM_NODE_CONFIG")
DataDirOption = typer.Option(None, "--data-dir", metavar="DIR", help="Data directory (instances, results, SQLite index).")
JsonOption = typer.Option(False, "--json", help="JSON output.")



def _version(value: bool) -> None:
    if value:
        typer.echo(f"dicom-node {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version, is_eager=True),
) -> None:
    """DICOM AI node: receive CT series, run its pipelines (COVID-19 CT, ...), send results to the PACS."""
    os.umask(PRIVATE_UMASK)  # every command creates files (the index, its journal) readable by the service user only


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"dicom-node: {message}", err=True)
    raise typer.Exit(code)


def _config(path: Optional[Path], overrides: dict[str, Any] | None = None) -> Config:
    try:
        return load_config(path, overrides or {})
    except ConfigError as exc:
        _fail(str(exc), 2)


def _node_overrides(data_dir: Optional[Path]) -> dict[str, Any]:
    return {"node": {"data_dir": str(data_dir)}} if data_dir else {}


def _sessions(cfg: Config):  # type: ignore[no-untyped-def]
    """The node's index; refused when an SQLite index does not exist (a wrong --data-dir must not create an empty one)."""
    from dicom_node.store.db import make_engine, make_sessionmaker, sqlite_path, upgrade

    path = sqlite_path(cfg.database_url)
    if path is not None and not path.exists():
        _fail(f"no index at {path}: is the data folder right (--data-dir, --config, node.data_dir)? `dicom-node serve` creates it")
    upgrade(cfg.database_url)
    return make_sessionmaker(make_engine(cfg.database_url))


def _rounded(value: Any) -> Any:
    """Measurements and times as people read them: 3 decimals, not 3100.8448000000003 (JSON output stays exact)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _print_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:  # exact, as the API gives them
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    rows = _rounded(rows)
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        typer.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())
