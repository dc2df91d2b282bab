"""The access log: one JSON line per request, refusals included, that an auditor can read back."""

from __future__ import annotations

import json
import stat
from datetime import datetime
from pathlib import Path

from tests.web.conftest import Site

REMOTE_CLIENT = ("192.0.2.10", 50000)


def entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_request_is_a_json_line_naming_who_read_what(small_site: Site) -> None:
    log = small_site.data_dir / "access.log"
    with small_site.client() as http:
        http.get(f"/api/jobs/{small_site.job_id}")
        http.get("/api/exports", params={"job": small_site.job_id})
        http.post(f"/api/jobs/{small_site.job_id}/retry", headers={"Origin": "http://evil.test"})
        http.get("/api/series", headers={"Host": "evil.test"})
    with small_site.client(client=REMOTE_CLIENT) as http:
        http.get("/api/series")
    job, exports, forged, rebound, remote = entries(log)
    assert {key: job[key] for key in ("client", "identity", "method", "path", "status")} == {
        "client": "127.0.0.1", "identity": "loopback", "method": "GET", "path": f"/api/jobs/{small_site.job_id}", "status": 200,
    }
    assert datetime.fromisoformat(job["time"]).utcoffset().total_seconds() == 0
    assert exports["query"] == f"job={small_site.job_id}"
    assert (forged["method"], forged["status"], forged["identity"]) == ("POST", 403, "anonymous")
    assert (rebound["status"], rebound["identity"]) == (400, "anonymous")
    assert (remote["client"], remote["status"], remote["identity"]) == ("192.0.2.10", 403, "anonymous")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_with_tokens_the_identity_is_the_tokens_name(small_site: Site) -> None:
    tokens = {"token": "s3cret", "tokens": {"ris": "ris-secret", "dr-house": "house-secret"}, "access_log": "audit/http.jsonl"}
    with small_site.client(client=REMOTE_CLIENT, http=tokens) as http:
        http.get("/api/jobs", headers={"Authorization": "Bearer s3cret"})
        http.get("/api/jobs", headers={"Authorization": "Bearer wrong"})
        http.get("/health")
        http.get("/api/series", headers={"Authorization": "Bearer house-secret"})
        http.get("/api/studies", headers={"Authorization": "Bearer ris-secret"})
    served, refused, health, house, ris = entries(small_site.data_dir / "audit" / "http.jsonl")
    assert (served["identity"], served["status"]) == ("token:default", 200)
    assert (house["identity"], house["path"], house["status"]) == ("token:dr-house", "/api/series", 200)
    assert (ris["identity"], ris["path"], ris["status"]) == ("token:ris", "/api/studies", 200)
    assert (refused["identity"], refused["status"]) == ("anonymous", 401)
    assert (health["identity"], health["path"]) == ("anonymous", "/health")


def test_a_rotated_log_continues_in_a_new_file(small_site: Site) -> None:
    log = small_site.data_dir / "access.log"
    with small_site.client() as http:
        http.get("/api/jobs")
        log.rename(log.with_suffix(".log.1"))  # logrotate without copytruncate
        http.get("/api/series")
    assert [entry["path"] for entry in entries(log.with_suffix(".log.1"))] == ["/api/jobs"]
    assert [entry["path"] for entry in entries(log)] == ["/api/series"]


def test_an_empty_path_turns_the_log_off(small_site: Site) -> None:
    with small_site.client(http={"access_log": ""}) as http:
        assert http.get("/api/jobs").status_code == 200
    assert not (small_site.data_dir / "access.log").exists()
