"""Configuration: documented file, environment overrides, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicom_node.config import ConfigError, load_config
from tests.node_process import REPO


def test_shipped_config_file_is_valid_and_documents_the_defaults() -> None:
    shipped = load_config(REPO / "config" / "dicom-node.toml", environ={})
    assert shipped.dicom.port == 11112 and shipped.dicom.called_aes[0].ae_title == "CLARA"
    assert shipped.jobs.settle_seconds == load_config(environ={}).jobs.settle_seconds


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[dicom]\nport = 104\n")
    config = load_config(cfg, environ={"DICOM_NODE_DICOM__PORT": "11113", "DICOM_NODE_DICOM__ALLOWED_SOURCES": '[{"ae_title": "CT1"}]'})
    assert config.dicom.port == 11113
    assert config.dicom.allowed_sources[0].ae_title == "CT1"


@pytest.mark.parametrize(
    "toml, key",
    [
        ("[dicom]\nport = 70000\n", "dicom.port"),
        ("[dicom]\nduplicate_policy = 'merge'\n", "dicom.duplicate_policy"),
        ("[[dicom.called_aes]]\nae_title = 'A_TITLE_WAY_TOO_LONG'\n", "dicom.called_aes.0.ae_title"),
        ("[jobs]\nsettle = 3\n", "jobs.settle"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(cfg, environ={})


def test_serve_refuses_to_start_on_a_bad_value(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[dicom]\nmax_associations = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "dicom_node", "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "var")],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "dicom.max_associations" in result.stderr


def test_shipped_config_file_is_the_generated_documentation() -> None:
    from dicom_node.config import example_toml

    assert (REPO / "config" / "dicom-node.toml").read_text() == example_toml(), "run `make config` after changing config.py"


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[dicom]\ntls_port = 2762\n", "tls_port needs tls_cert_file and tls_key_file"),
        ("[dicom]\nport = 0\n", "port and tls_port are both 0"),
        ("[dicom]\ntls_port = 11112\ntls_cert_file = 'c.pem'\ntls_key_file = 'k.pem'\n", "tls_port and port must differ"),
    ],
)
def test_listening_ports_must_make_sense(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=f"dicom: .*{message}"):
        load_config(cfg, environ={})
