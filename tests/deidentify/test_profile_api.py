"""The REST read of each destination's effective de-identification profile."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from dicom_node.config import load_config
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.web.api import create_app
from dicom_node.web.context import WebContext


def test_destinations_show_their_effective_profile(tmp_path: Path) -> None:
    upgrade(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    config = load_config(
        None,
        {
            "node": {"data_dir": str(tmp_path), "name": "test-node"},
            "destinations": [
                {"name": "PACS", "ae_title": "PACS", "host": "127.0.0.1", "port": 104},
                {"name": "RESEARCH", "ae_title": "RESEARCH", "host": "127.0.0.1", "port": 105, "include_source": True,
                 "deidentification": {"enabled": True, "retain_patient_characteristics": True}},
            ],
        },
        environ={},
    )  # fmt: skip
    app = create_app(WebContext(config, make_sessionmaker(engine), tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000), base_url="http://localhost") as client:
        pacs, research = client.get("/api/destinations").json()
    engine.dispose()
    assert pacs["deidentification"] == {"enabled": False}
    profile = research["deidentification"]
    assert research["include_source"] and profile["retain_patient_characteristics"] and not profile["retain_uids"]
    assert [code["code"] for code in profile["method_codes"]] == ["113100", "113108", "113107", "113105", "113104"]
    assert "Table E.1-1" in profile["table"] and "2026c" in profile["table"]
