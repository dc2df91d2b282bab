"""A real node (through its CLI) started with umask 000 and HTTPS: it received a phantom series from storescu and
processed it; every file it made is its user's alone, and its API answers over TLS only."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from dicom_node.config import ConfigError
from phantoms.chest import make_phantom, write_phantom_series
from dicom_node.web.api import create_app
from dicom_node.web.server import HttpServer
from tests.certificates import self_signed
from tests.dcmtk import storescu
from tests.node.index import wait_for_finished_job
from tests.node_process import NodeProcess, free_port, wait_for_port
from tests.web.conftest import Site, make_config


@dataclass(frozen=True)
class SecuredNode:
    node: NodeProcess
    url: str
    certificate: Path
    job_id: int


def trusting(certificate: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certificate)


@pytest.fixture(scope="module")
def secured_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredNode]:
    tmp = tmp_path_factory.mktemp("secured-node")
    certificate, key = self_signed(tmp, "https", "127.0.0.1")
    series = write_phantom_series(make_phantom((128, 128, 40), 0.1, seed=4), tmp / "series")
    http_port = free_port()
    node = NodeProcess(
        tmp / "node",
        settings={"jobs": {"workers": 1}, "http": {"port": http_port, "tls_cert_file": str(certificate), "tls_key_file": str(key)}},
        umask=0o000,  # the most permissive a service manager could hand over
    )
    node.tmp.mkdir()
    node.start(timeout=60)
    try:
        wait_for_port(http_port, 30, node.proc)
        sent = storescu(node.port, series[0].parent)
        assert sent.returncode == 0, sent.stderr
        job_id, state, reason = wait_for_finished_job(node.data_dir, pydicom.dcmread(series[0]).SeriesInstanceUID, timeout=240)
        assert state == "done", reason
        yield SecuredNode(node, f"https://127.0.0.1:{http_port}", certificate, job_id)
    finally:
        node.stop()


def test_everything_under_the_data_dir_is_the_service_users_alone(secured_node: SecuredNode) -> None:
    data_dir = secured_node.node.data_dir
    with httpx.Client(verify=trusting(secured_node.certificate)) as http:  # the access log gets a line too
        assert http.get(f"{secured_node.url}/api/jobs/{secured_node.job_id}").json()["state"] == "done"
    names = {path.name for path in data_dir.rglob("*")}
    assert {"index.sqlite3", "index.sqlite3-wal", "index.sqlite3-shm", "access.log", "result.json", "masks.npz"} <= names, names
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    modes = {str(path.relative_to(data_dir)): stat.S_IMODE(path.stat().st_mode) for path in data_dir.rglob("*")}
    assert len(modes) > 40 + 6  # the 40 instances, the index, the results, the log
    wrong = {path: oct(mode) for path, mode in modes.items() if mode != (0o700 if (data_dir / path).is_dir() else 0o600)}
    assert wrong == {}


def test_the_api_answers_over_tls_only(secured_node: SecuredNode) -> None:
    with httpx.Client(verify=trusting(secured_node.certificate)) as http:
        response = http.get(f"{secured_node.url}/api/jobs/{secured_node.job_id}")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in response.headers  # nothing to tell a scanner which server software answers
    with pytest.raises(httpx.ConnectError):  # the certificate is checked: an unknown one is refused
        httpx.get(f"{secured_node.url}/health", verify=ssl.create_default_context())
    plain = secured_node.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/health")
    (line,) = [json.loads(entry) for entry in (secured_node.node.data_dir / "access.log").read_text().splitlines()
               if f"/api/jobs/{secured_node.job_id}" in entry][-1:]
    assert (line["identity"], line["status"]) == ("loopback", 200)


def test_an_unreadable_key_stops_start_up_with_the_reason(small_site: Site, tmp_path: Path) -> None:
    certificate, _ = self_signed(tmp_path, "https", "127.0.0.1")
    server = HttpServer(create_app(small_site.context()), "127.0.0.1", free_port(), str(certificate), str(tmp_path / "missing.key"))
    with pytest.raises(OSError, match="is not available.*No such file"):
        server.start()


def test_a_certificate_without_its_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file"):
        make_config(tmp_path, http={"tls_cert_file": "/etc/ssl/node.pem"})
