"""The rough edges an operator met on the second day, each where a user would notice it: the messages of the HTTP
server and the configuration, the start-up lines, `exports list`, and the documents that must agree with the code."""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from dicom_node.config import ConfigError, load_config
from dicom_node.store.gauges import JOB_STATES
from dicom_node.node import Node
from dicom_node.web.server import HttpServer
from tests.export.conftest import result_like_objects, seed_exports
from typer.testing import CliRunner, Result

from dicom_node.cli import app
from tests.node_process import REPO, free_port
from tests.web.conftest import make_config

DOCS = REPO / "docs"


def cli(*args: str) -> Result:
    """The command in this process (a subprocess costs seconds of imports), keeping the test process's umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        return CliRunner().invoke(app, list(args), prog_name="dicom-node")
    finally:
        os.umask(umask)


def test_an_http_host_that_does_not_resolve_is_blamed_not_the_port() -> None:
    with pytest.raises(OSError) as caught:
        HttpServer(FastAPI(), "pacs.invalid", free_port()).start()
    message = str(caught.value)
    assert message.startswith("HTTP host 'pacs.invalid' does not resolve") and "--http-host" in message
    assert "port" not in message.split(":")[0]


def test_a_busy_http_port_names_the_options_that_exist_for_serve_and_worker() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"HTTP port 127.0.0.1:{port} is already in use: choose another with --http-port or http.port"):
            HttpServer(FastAPI(), "127.0.0.1", port).start()
    helped = cli("worker", "-h")
    assert helped.exit_code == 0 and "--http-port PORT" in helped.stdout, helped.stdout
    assert "dicom-node worker --http-port 8081" in (DOCS / "scale-out.md").read_text()


def test_an_environment_variable_typo_is_reported_as_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"DICOM_NODE_DICOM__PROT": "11113"})
    assert str(caught.value) == "invalid configuration: environment variable DICOM_NODE_DICOM__PROT: dicom has no setting 'prot' (a typo?)"
    assert "dicom.prot" not in str(caught.value)
    with pytest.raises(ConfigError, match="environment variable DICOM_NODE_DICOMM__PORT: the configuration has no setting 'dicomm'"):
        load_config(environ={"DICOM_NODE_DICOMM__PORT": "11113"})
    with pytest.raises(ConfigError, match=r"environment variable DICOM_NODE_DICOM__PORT \(dicom.port\): Input should be a valid integer"):
        load_config(environ={"DICOM_NODE_DICOM__PORT": "eleven"})
    # A key in the file is still named as the file's key.
    with pytest.raises(ConfigError, match=r"invalid configuration: dicom.prot: Extra inputs are not permitted"):
        load_config(overrides={"dicom": {"prot": 1}}, environ={})


def test_start_up_says_retention_is_on_with_its_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dicom_node")
    config = make_config(
        tmp_path, dicom={"host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0}, http={"port": 0}, jobs={"workers": 0},
        retention={"max_age_days": 30, "min_free_disk_mb": 20480},
    )
    node = Node(config)
    node.start()
    node.stop()
    assert (
        "retention is on: deleting series last received more than 30 days ago and the oldest series while less than "
        "20480 MB are free, looking every 300 s" in caplog.messages
    )


def test_models_are_checked_at_once_when_triton_is_down(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two models, each about 2.5 s of retries against a closed port: start-up waits for one check, not for both."""
    url = f"grpc://127.0.0.1:{free_port()}"
    quick = {"backend": "triton", "url": url, "retries": 1, "backoff_s": 2.0, "connect_timeout_s": 0.5}
    config = make_config(tmp_path, models={"lung_segmentation": quick, "covid_classifier": quick})
    started = time.monotonic()
    Node(config)._check_models()  # the start-up step alone: the node's other start-up work would blur the timing
    took = time.monotonic() - started
    unavailable = [m for m in caplog.messages if "is unavailable (jobs will wait for it)" in m]
    assert len(unavailable) == 2 and all(f"Triton at {url} did not answer the check of model" in m for m in unavailable), unavailable
    each = [float(re.search(r"\(2 attempts in ([0-9.]+) s\)", m).group(1)) for m in unavailable]  # type: ignore[union-attr]
    assert took < 0.75 * sum(each), f"{took:.1f} s for checks of {each} s: they ran one after another"


def test_exports_list_shows_the_object_type_and_filters_by_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    first = seed_exports(data_dir, result_like_objects(tmp_path / "one"), ["PACS"])
    second = seed_exports(data_dir, result_like_objects(tmp_path / "two"), ["PACS"])
    listed = cli("exports", "list", "--job", str(second), "--data-dir", str(data_dir))
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "JOB_ID", "OBJECT_TYPE", "DESTINATION"]
    assert sorted(row.split()[2] for row in rows) == ["SEG", "SR"] and {row.split()[1] for row in rows} == {str(second)}
    assert first != second


def test_operations_md_has_the_job_state_table_with_every_state() -> None:
    text = (DOCS / "operations.md").read_text()
    section = text[text.index("## Job states"):]
    table = re.findall(r"^\| `([a-z]+)` \|", section.split("\n## ")[0], flags=re.M)
    assert table == list(JOB_STATES)


def test_export_docs_and_the_config_comment_agree_on_how_many_processes_send() -> None:
    from dicom_node.config import ExportSettings

    comment = ExportSettings.model_fields["enabled"].description or ""
    export_md = " ".join((DOCS / "export.md").read_text().split())
    assert "any number" in comment.lower() and "any number of processes" in export_md
    assert "exactly one" not in export_md


def test_readme_starts_with_make_serve_and_make_test_then_connect_your_pacs_and_keeps_benchmarks_in_docs() -> None:
    readme = (REPO / "README.md").read_text()
    lines = readme.splitlines()
    assert lines[3].startswith("make serve   #") and lines[4].startswith("make test    #")
    sections = re.findall(r"^## (.+)$", readme, flags=re.M)
    assert sections[0] == "Connect your PACS", sections
    connect = readme[readme.index("## Connect your PACS"):readme.index("\n## ", readme.index("## Connect your PACS") + 1)]
    for needed in ("routing rule", "[[destinations]]", "dicom-node echo", "tls_port", "tls = true", "allowed_sources"):
        assert needed in connect, needed
    assert "| receiver | 1 assoc." not in readme and "| receiver | 1 assoc." in (DOCS / "benchmarks.md").read_text()
    assert len(readme.splitlines()) < 180
