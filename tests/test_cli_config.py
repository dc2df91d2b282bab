"""`dicom-node ae|source|destination ...` and `config export` through Typer's runner on a real index."""

from __future__ import annotations

import getpass
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.config import load_config
from dicom_node.config_entities import Entities
from dicom_node.live_config import LiveConfig, config_store
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from tests.node_process import write_toml


def test_fields_rules_force_and_an_export_that_loads_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    path = write_toml(tmp_path / "node.toml", {"node": {"data_dir": str(data_dir)}, "dicom": {"allowed_sources": [{"ae_title": "CT1"}]}})
    config = load_config(path, environ={})
    upgrade(config.database_url)
    config_store(config, make_sessionmaker(make_engine(config.database_url))).seed(config, "configuration file")
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, [*args, "--config", str(path)])
        return result.exit_code, result.output

    assert cli("destination", "add", "PACS", "ae_title=1234", "host=pacs_1", "port=4242", 'pipelines=["covid19_ct"]', "tls=false") == (
        0, f"destination PACS added by cli:{getpass.getuser()}\n")
    code, output = cli("destination", "add", "BAD", "ae_title=X", "host=x", "port=99999")
    assert code == 2 and "port: Input should be less than or equal to 65535" in output
    assert cli("destination", "add", "PACS", "ae_title=X", "host=x", "port=1")[0] == 1
    assert cli("source", "update", "CT1", "host=10.2.0.0/16", "query_retrieve=true")[0] == 0
    code, output = cli("source", "remove", "CT1")
    assert code == 1 and "last one" in output
    code, output = cli("ae", "list")
    assert code == 0 and "CLARA" in output and "covid19_ct" in output

    exported = tmp_path / "exported.toml"
    assert cli("config", "export", "-o", str(exported))[0] == 0
    tomllib.loads(exported.read_text())
    again = load_config(exported, environ={})
    live = load_config(path, environ={})
    LiveConfig(live, config_store(live, make_sessionmaker(make_engine(live.database_url)))).refresh()
    assert Entities.from_config(again).specs == Entities.from_config(live).specs
    assert again.destination("PACS").ae_title == "1234" and again.pipelines["covid19_ct"].destinations == ["PACS"]
    assert again.dicom.allowed_sources[0].host == "10.2.0.0/16" and again.dicom.allowed_sources[0].query_retrieve
