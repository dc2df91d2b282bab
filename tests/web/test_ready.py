"""/ready: database, disk, readiness hooks (Triton) and destinations, each reported by name."""

from __future__ import annotations

import socket

from fastapi.testclient import TestClient

from dicom_node.web.api import create_app
from tests.web.conftest import Site, free_port


def destination(name: str, port: int) -> dict[str, object]:
    return {"name": name, "ae_title": "PACS", "host": "127.0.0.1", "port": port}


def test_ready_when_everything_answers(small_site: Site) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with small_site.client(dicom={"min_free_disk_mb": 0}, destinations=[destination("pacs", port)]) as http:
            response = http.get("/ready")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "disk", "destination:pacs"}
    assert body["checks"]["destination:pacs"]["ok"] is True


def test_not_ready_names_what_is_missing(small_site: Site) -> None:
    closed = free_port()  # nothing listens there
    sections = {"dicom": {"min_free_disk_mb": 10**9}, "destinations": [destination("pacs", closed)]}
    context = small_site.context(**sections)

    def triton() -> None:
        raise ConnectionError("triton at 127.0.0.1:8000 is not live")

    context.readiness_hooks["triton"] = triton
    with TestClient(create_app(context), client=("127.0.0.1", 1), base_url="http://localhost") as http:
        response = http.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["disk"]["ok"] is False and "minimum 1000000000 MB" in checks["disk"]["detail"]
    assert checks["triton"] == {"ok": False, "detail": "triton at 127.0.0.1:8000 is not live"}
    assert checks["destination:pacs"]["ok"] is False and f"127.0.0.1:{closed} unreachable" in checks["destination:pacs"]["detail"]


def test_not_ready_without_database(small_site: Site) -> None:
    with small_site.client(dicom={"min_free_disk_mb": 0}) as http:
        small_site.sessions.kw["bind"].dispose()
        (small_site.data_dir / "index.sqlite3").unlink()
        (small_site.data_dir / "index.sqlite3").mkdir()  # a directory where the database file was: SQLite cannot open it
        response = http.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
