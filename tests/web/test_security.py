"""Requests a browser can be tricked into sending (foreign Host, cross-site POST), and the security headers.

The same checks from a real browser are in test_browser_security.py; here every
variant of the headers is tried against the app over a data dir with a failed job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.config import HttpSettings
from dicom_node.web.security_headers import content_security_policy
from dicom_node.web.security import allowed_hosts, host_name
from tests.web.conftest import Site

OHIF_DIR = Path(".cache/ohif")

TEXT_PLAIN = {"Content-Type": "text/plain"}  # what a cross-site form (enctype text/plain) or no-cors fetch sends
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


def job_state(site: Site) -> str:
    with site.client() as http:
        return http.get(f"/api/jobs/{site.job_id}").json()["state"]


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost", "localhost"), ("LocalHost:8080", "localhost"), ("127.0.0.1:80", "127.0.0.1"), ("[::1]:8080", "::1"),
     ("[::1]", "::1"), ("::1", "::1"), ("node.example.org", "node.example.org"), ("evil.test:8080", "evil.test")],
)
def test_host_name_without_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_allowed_hosts_add_the_bound_address_but_not_a_wildcard() -> None:
    assert allowed_hosts(HttpSettings()) == {"localhost", "127.0.0.1", "::1"}
    assert "10.1.2.3" in allowed_hosts(HttpSettings(host="10.1.2.3"))
    assert "0.0.0.0" not in allowed_hosts(HttpSettings(host="0.0.0.0"))
    assert allowed_hosts(HttpSettings(host="::", allowed_hosts=["Node.Example.org"])) == {"node.example.org"}


@pytest.mark.parametrize("token", ["", "s3cret"])
def test_a_foreign_host_is_refused_whoever_asks(small_site: Site, token: str) -> None:
    """DNS rebinding: the request comes from loopback, but names the attacker's host."""
    auth = {"Authorization": "Bearer s3cret"} if token else {}
    with small_site.client(base_url="http://rebind.evil.test:8080", http={"token": token}) as http:
        for path in ("/api/series", "/api/jobs", "/", "/static/api.js", "/openapi.json"):
            response = http.get(path, headers=auth)
            assert response.status_code == 400, path
            assert "rebind.evil.test" in response.json()["detail"] and "allowed_hosts" in response.json()["detail"]
        assert http.post(f"/api/jobs/{small_site.job_id}/retry", headers=auth).status_code == 400
    assert job_state(small_site) == "failed"


def test_a_liveness_probe_naming_the_pod_address_gets_health_and_nothing_else(small_site: Site) -> None:
    """kubelet's httpGet probe sends `Host: <pod IP>:8080`; /health answers any Host (it is open and holds nothing),
    every other path still refuses that name."""
    with small_site.client(base_url="http://10.244.1.17:8080", http={"token": "s3cret"}) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/ready", headers={"Authorization": "Bearer s3cret"}).status_code == 400
        assert http.get("/").status_code == 400


@pytest.mark.parametrize("base_url", ["http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"])
def test_loopback_names_are_served(small_site: Site, base_url: str) -> None:
    with small_site.client(base_url=base_url) as http:
        assert http.get("/api/series").status_code == 200


def test_configured_names_are_served(small_site: Site) -> None:
    with small_site.client(base_url="http://dicom-node.hospital.example", http={"allowed_hosts": ["dicom-node.hospital.example"]}) as http:
        assert http.get("/api/series").status_code == 200
        assert http.get("/api/series", headers={"Host": "localhost"}).status_code == 400  # the list replaces the default
    with small_site.client(base_url="http://anything.example", http={"allowed_hosts": ["*"]}) as http:
        assert http.get("/api/series").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.test"},
        {"Origin": "null"},  # a sandboxed frame or a redirect chain
        {"Origin": "http://localhost:9999"},  # another port is another origin
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.test"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_origin_post_does_not_retry_the_job(small_site: Site, headers: dict[str, str]) -> None:
    with small_site.client() as http:
        response = http.post(f"/api/jobs/{small_site.job_id}/retry", headers=TEXT_PLAIN | headers, content="x=1")
        assert response.status_code == 403
        assert "cross-origin" in response.json()["detail"]
        assert http.post(f"/api/exports/{small_site.export_id}/retry", headers=headers).status_code == 403
    assert job_state(small_site) == "failed"


def test_a_cross_origin_post_with_the_token_is_refused_too(small_site: Site) -> None:
    with small_site.client(http={"token": "s3cret"}) as http:
        headers = {"Authorization": "Bearer s3cret", "Sec-Fetch-Site": "cross-site"}
        assert http.post(f"/api/jobs/{small_site.job_id}/retry", headers=headers).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, the CLI, a script: no browser page involved
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},  # the node's own page
        {"Sec-Fetch-Site": "none"},  # typed by the user
        {"Origin": "http://localhost"},  # a browser that sends Origin but not Sec-Fetch-Site
    ],
)
def test_same_origin_and_non_browser_posts_retry_the_job(small_site: Site, headers: dict[str, str]) -> None:
    with small_site.client() as http:
        response = http.post(f"/api/jobs/{small_site.job_id}/retry", headers=headers)
        assert response.status_code == 200
        assert response.json()["state"] == "queued"


def test_cross_origin_reads_are_left_to_the_browsers_same_origin_policy(small_site: Site) -> None:
    """A GET changes nothing and, without CORS headers, its answer is not readable by the other page."""
    with small_site.client() as http:
        response = http.get("/api/jobs", headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.test"})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


def test_security_headers_on_every_response(small_site: Site) -> None:
    with small_site.client() as http:
        answers = {
            "page": http.get("/"),
            "script": http.get("/static/series.js"),
            "json": http.get("/api/jobs"),
            "image": http.get(f"/api/jobs/{small_site.job_id}/slices/axial/0.png"),
            "not found": http.get("/api/jobs/999"),
            "invalid": http.get("/api/jobs/x"),
            "health": http.get("/health"),
            "cross-origin refusal": http.post(f"/api/jobs/{small_site.job_id}/retry", headers={"Origin": "http://evil.test"}),
            "host refusal": http.get("/api/jobs", headers={"Host": "evil.test"}),
        }
    with small_site.client(client=("192.0.2.10", 5000)) as http:
        answers["loopback refusal"] = http.get("/api/jobs")
    for what, response in answers.items():
        for header in SECURITY_HEADERS:
            assert header in response.headers, (what, header)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # plain HTTP: HSTS only over TLS (test_https.py)


def test_answers_with_patient_data_are_never_stored_and_static_files_are(small_site: Site) -> None:
    with small_site.client() as http:
        private = {
            "job": http.get(f"/api/jobs/{small_site.job_id}"),
            "jobs": http.get("/api/jobs"),
            "image": http.get(f"/api/jobs/{small_site.job_id}/slices/axial/0.png"),
            "dicomweb": http.get("/dicomweb/studies"),
            "series page": http.get(f"/series/{small_site.series_id}"),
            "ohif page": http.get("/ohif/viewer?StudyInstanceUIDs=1.2.3"),
            "not found": http.get("/api/jobs/999"),
            "metrics": http.get("/metrics"),
        }
        static = {"script": http.get("/static/series.js")}
        static["ohif file"] = http.get("/ohif/" + next(p.name for p in OHIF_DIR.glob("*.js") if p.name != "app-config.js"))
    for what, response in private.items():
        assert response.headers["cache-control"] == "no-store", what
    for what, response in static.items():
        assert response.status_code == 200, what
    assert static["script"].headers["cache-control"] == static["ohif file"].headers["cache-control"] == "no-cache"


def test_the_node_policy_allows_only_its_own_files() -> None:
    policy = dict(part.split(" ", 1) for part in content_security_policy("/series/1").split("; "))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'" and policy["object-src"] == "'none'"
    assert "unsafe-inline" not in content_security_policy("/") and "unsafe-eval" not in content_security_policy("/")


def test_the_policy_is_relaxed_only_under_its_prefix(small_site: Site) -> None:
    with small_site.client() as http:
        docs = http.get("/docs").headers["content-security-policy"]
        assert "'unsafe-inline'" in docs and "frame-ancestors 'none'" in docs and "https:" not in docs  # offline docs
        assert "unsafe-inline" not in http.get("/docsx").headers["content-security-policy"]
    assert content_security_policy("/docs/oauth2-redirect") == docs
    assert "unsafe-inline" not in content_security_policy("/api/docs")
    assert "'wasm-unsafe-eval'" in content_security_policy("/ohif/viewer") and "wasm" not in content_security_policy("/series/1")
