"""`dicom-node ae|source|destination list|add|update|remove`, `destination echo NAME` and `config export`.

The same run-time configuration as `/api/config/...` (`store/config_store.py`), written straight into the
node's database: every process of the node applies a change within a second, and the audit log names the
change's author as `cli:<user>`. Fields are given as FIELD=VALUE: a text field takes the value as written,
the others read it as JSON (`port=4242`, `tls=true`, `pipelines='["covid19_ct"]'`).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from types import UnionType
from typing import Any, Optional, Union, get_args, get_origin

import typer
from pydantic import BaseModel

from dicom_node.cli_base import ConfigOption, DataDirOption, JsonOption, _config, _fail, _node_overrides, _print_rows, _sessions, _typer, app
from dicom_node.config import Config, config_toml
from dicom_node.config_entities import MODELS, InvalidEntity, Kind, RoutedDestination, merged, parse, public
from dicom_node.live_config import LiveConfig, config_store
from dicom_node.store.config_store import ConfigConflict, ConfigStore, NotConfigured

COLUMNS: dict[Kind, list[str]] = {
    "ae": ["ae_title", "pipelines", "settle_seconds", "sop_classes", "refused_sop_classes"],
    "source": ["name", "ae_title", "host", "called_aes", "query_retrieve"],
    "destination": ["name", "ae_title", "host", "port", "tls", "pipelines", "retrieve_method", "include_source"],
}
FIRST_FIELD: dict[Kind, str] = {"ae": "ae_title", "source": "ae_title", "destination": "name"}
HELP: dict[Kind, str] = {
    "ae": "Called AE titles of this node, each bound to a pipeline.",
    "source": "Calling AEs (and hosts or networks) allowed to send, the called AEs each may use, and whether it may query.",
    "destination": "Peers that results are sent to (and, with a retrieve method, studies are retrieved from).",
}
NameArgument = typer.Argument(..., metavar="NAME", help="Its name (a called AE: its title).")
FieldsArgument = typer.Argument(None, metavar="FIELD=VALUE...", help="Fields to set (see config/dicom-node.toml and docs/operations.md).")


def _who() -> str:
    return f"cli:{getpass.getuser()}"


def _store(cfg: Config) -> ConfigStore:
    return config_store(cfg, _sessions(cfg))


def _opened(config: Optional[Path], data_dir: Optional[Path]) -> tuple[Config, ConfigStore]:
    cfg = _config(config, _node_overrides(data_dir))
    return cfg, _store(cfg)


def live_config(cfg: Config) -> Config:
    """`cfg` with the database's called AEs, sources and destinations: what the running node uses."""
    LiveConfig(cfg, _store(cfg)).refresh()
    return cfg


def _fields(model: type[BaseModel], pairs: list[str]) -> dict[str, Any]:
    """FIELD=VALUE pairs as the model's fields: text as written, anything else as JSON."""
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, equals, raw = pair.partition("=")
        if not equals:
            _fail(f"{pair!r}: give fields as FIELD=VALUE", 2)
        info = model.model_fields.get(name)
        annotation = None if info is None else info.annotation
        if annotation is str or (get_origin(annotation) in (Union, UnionType) and str in get_args(annotation)):
            fields[name] = raw
            continue
        try:
            fields[name] = json.loads(raw)
        except ValueError:
            fields[name] = raw  # the model says what is wrong with it
    return fields


def _cell(value: Any) -> Any:
    """A value as a table shows it: nothing for unset, lists comma-separated."""
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else value


def _change(action: Any) -> None:
    try:
        typer.echo(action().text())
    except InvalidEntity as exc:
        _fail(f"invalid: {exc}", 2)
    except (ConfigConflict, NotConfigured) as exc:
        _fail(str(exc))


def _commands(kind: Kind) -> typer.Typer:
    """One kind's list, add, update and remove (and the destinations' echo)."""
    commands = _typer(HELP[kind])
    model = MODELS[kind]
    first = FIRST_FIELD[kind]

    @commands.command("list")
    def list_(as_json: bool = JsonOption, data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption) -> None:
        """List them (secrets redacted)."""
        _, store = _opened(config, data_dir)
        rows = [public(kind, spec) for spec in store.load()[1].specs[kind].values()]
        if not as_json:
            rows = [{key: _cell(value) for key, value in row.items()} for row in rows]
        _print_rows(rows, as_json, COLUMNS[kind])

    @commands.command("add")
    def add(
        key: str = typer.Argument(..., metavar=first.upper(), help=f"The {first}."),
        fields: Optional[list[str]] = FieldsArgument,
        data_dir: Optional[Path] = DataDirOption,
        config: Optional[Path] = ConfigOption,
    ) -> None:
        """Add one; in force in every process of the node within a second."""
        cfg, store = _opened(config, data_dir)
        _change(lambda: store.add(kind, parse(kind, {first: key} | _fields(model, fields or []), cfg), _who()))

    @commands.command("update")
    def update(
        name: str = NameArgument, fields: Optional[list[str]] = FieldsArgument, data_dir: Optional[Path] = DataDirOption, config: Optional[Path] = ConfigOption
    ) -> None:
        """Change the fields given; the others keep their values."""
        cfg, store = _opened(config, data_dir)
        current = store.load()[1].specs[kind].get(name)
        if current is None:
            _fail(f"no {kind} {name}")
        _change(lambda: store.update(kind, name, parse(kind, merged(current, _fields(model, fields or [])), cfg), _who()))

    @commands.command("remove")
    def remove(
        name: str = NameArgument,
        force: bool = typer.Option(False, "--force", help="A destination with pending exports: remove it anyway; they fail."),
        data_dir: Optional[Path] = DataDirOption,
        config: Optional[Path] = ConfigOption,
    ) -> None:
        """Remove one. Associations in progress are not cut; the last called AE or source cannot be removed."""
        _, store = _opened(config, data_dir)
        _change(lambda: store.remove(kind, name, _who(), force))

    return commands


destination_app = _commands("destination")


@destination_app.command("echo")
def destination_echo(
    name: str = typer.Argument(..., metavar="NAME"),
    as_json: bool = JsonOption,
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """C-ECHO a configured destination with its address and TLS settings; non-zero exit when it fails."""
    from dicom_node.net.address import DicomAddress
    from dicom_node.net.scu import NoAssociation, Scu, tls_args

    cfg, store = _opened(config, data_dir)
    spec = store.load()[1].specs["destination"].get(name)
    if spec is None:
        _fail(f"no destination {name}")
    dest = RoutedDestination.model_validate(spec)
    address = DicomAddress(dest.ae_title, dest.host, dest.port)
    try:
        result = Scu(cfg.export, tls_args(dest)).echo(address)
    except NoAssociation as exc:
        _fail(f"{name} ({address}): {exc}")
    if as_json:
        typer.echo(json.dumps({"destination": name, "ok": result.status == 0, "status": f"0x{result.status:04X}", "seconds": round(result.seconds, 4)}))
    else:
        typer.echo(f"{name} ({address}): C-ECHO status 0x{result.status:04X} in {result.seconds * 1000:.0f} ms")
    if result.status != 0:
        raise typer.Exit(1)


config_app = _typer("The configuration as the node uses it.")


@config_app.command("export")
def config_export(
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write it there (default: standard output)."),
    data_dir: Optional[Path] = DataDirOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Write the configuration in force as TOML: the file's settings with the database's called AEs, sources and
    destinations (which the database keeps after the first start; docs/operations.md)."""
    cfg = live_config(_config(config, _node_overrides(data_dir)))
    text = config_toml(cfg, ["dicom-node configuration exported by `dicom-node config export` (the database's AEs, sources and destinations)."])
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"configuration written to {output}", err=True)


app.add_typer(_commands("ae"), name="ae")
app.add_typer(_commands("source"), name="source")
app.add_typer(destination_app, name="destination")
app.add_typer(config_app, name="config")
