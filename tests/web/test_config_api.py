"""`/api/config/...`: list, add, update, remove with rules that name the field, 409s, C-ECHO, and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.web.api import create_app
from dicom_node.web.context import WebContext
from tests.dcmtk import Storescp
from tests.node_process import wait_for_port
from tests.store.test_config_store import add_pending_exports
from tests.web.conftest import LOOPBACK_CLIENT, free_port, make_config

ADMIN = {"Authorization": "Bearer adm1n-token"}


@pytest.fixture
def context(tmp_path: Path) -> WebContext:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    config = make_config(
        data_dir, http={"tokens": {"admin": "adm1n-token"}}, dicom={"allowed_sources": [{"ae_title": "CT1"}]},
        destinations=[{"name": "PACS", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": free_port()}],
        pipelines={"covid19_ct": {"destinations": ["PACS"]}},
    )
    upgrade(config.database_url)
    context = WebContext(config, make_sessionmaker(make_engine(config.database_url)), data_dir)
    assert context.config_store is not None
    context.config_store.seed(config, "configuration file")
    return context


@pytest.fixture
def http(context: WebContext) -> TestClient:
    return TestClient(create_app(context), client=LOOPBACK_CLIENT, base_url="http://localhost", headers=ADMIN)


def test_add_update_remove_with_the_rules_answers(http: TestClient, tmp_path: Path) -> None:
    assert [d["name"] for d in http.get("/api/config/destination").json()] == ["PACS"]
    assert http.get("/api/config/destination/PACS").json()["pipelines"] == ["covid19_ct"]
    assert http.get("/api/config/ae").json()[0]["ae_title"] == "CLARA"

    bad = http.post("/api/config/source", json={"ae_title": "BACK\\SLASH", "host": "10.0.0.0/33"})
    assert bad.status_code == 422
    assert {problem["field"] for problem in bad.json()["errors"]} == {"ae_title", "host"}
    assert "no backslash" in bad.text and "prefix length" in bad.text
    unknown = http.post("/api/config/ae", json={"ae_title": "DENSITY", "pipelines": ["lung_density", "nope"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "pipelines" and "unknown pipeline(s) ['nope']" in unknown.text
    assert http.post("/api/config/ae", json={"ae_title": "BOTH", "pipelines": ["covid19_ct", "lung_density"]}).status_code == 201
    ports = http.post("/api/config/destination", json={"name": "X", "ae_title": "X", "host": "127.0.0.1", "port": 0})
    assert ports.status_code == 422 and ports.json()["errors"][0]["field"] == "port"

    added = http.post("/api/config/source", json={"ae_title": "CT2", "called_aes": ["CLARA"]})
    assert added.status_code == 201 and added.json()["name"] == "CT2"
    assert http.post("/api/config/source", json={"ae_title": "CT2"}).status_code == 409
    assert http.put("/api/config/source/CT2", json={"query_retrieve": True}).json()["query_retrieve"] is True
    assert http.put("/api/config/source/NOPE", json={}).status_code == 404
    assert http.delete("/api/config/source/CT1").status_code == 200
    last = http.delete("/api/config/source/CT2")
    assert last.status_code == 409 and "last one" in last.json()["detail"]

    entries = [json.loads(line) for line in (tmp_path / "var" / "access.log").read_text().splitlines()]
    changes = [(e["identity"], e["action"], e["name"]) for e in entries if e.get("event") == "config"]
    assert changes[-3:] == [("token:admin", "add", "CT2"), ("token:admin", "update", "CT2"), ("token:admin", "remove", "CT1")]


def test_cecho_answers_502_when_the_destination_does_not_answer(http: TestClient, tmp_path: Path) -> None:
    down = http.get("/api/config/destination/cecho/PACS")
    assert down.status_code == 502 and down.json()["ok"] is False
    assert http.get("/api/config/destination/cecho/NOPE").status_code == 404
    port = free_port()
    with Storescp(port, tmp_path / "peer", ae="PEER") as peer:
        wait_for_port(port, 10, peer.proc)
        assert http.post("/api/config/destination", json={"name": "PEER", "ae_title": "PEER", "host": "127.0.0.1", "port": port}).status_code == 201
        up = http.get("/api/config/destination/cecho/PEER")
        assert up.status_code == 200 and up.json()["status"] == "0x0000"


def test_a_destination_with_pending_exports_is_removed_only_with_force(http: TestClient, context: WebContext) -> None:
    add_pending_exports(context.sessions, "PACS", 2)
    refused = http.delete("/api/config/destination/PACS")
    assert refused.status_code == 409 and refused.json()["pending_exports"] == 2 and "force" in refused.json()["detail"]
    assert http.delete("/api/config/destination/PACS", params={"force": "true"}).status_code == 200
    assert http.get("/api/config/destination").json() == []
    exports = http.get("/api/exports").json()
    assert {(e["state"], e["last_error"]) for e in exports} == {("failed", "destination PACS was removed by token:admin")}
