"""Who may call what: the bearer token when one is configured, loopback clients only when none is."""

from __future__ import annotations

import pytest

from dicom_node.config import ConfigError
from dicom_node.web.access import is_loopback
from tests.web.conftest import LOOPBACK_CLIENT, Site, make_config

REMOTE_CLIENT = ("192.0.2.10", 50000)  # TEST-NET-1: a documentation address, never contacted
DATA_PATHS = ["/api/jobs", "/api/series", "/ready", "/metrics", "/dicomweb/studies"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["192.0.2.10", "::ffff:192.0.2.10", "10.0.0.1", "localhost", "testclient", "", None])
def test_other_addresses_are_not_loopback(host: str | None) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("client", [LOOPBACK_CLIENT, REMOTE_CLIENT])
def test_with_token_data_needs_the_token(small_site: Site, client: tuple[str, int]) -> None:
    with small_site.client(client=client, http={"token": "s3cret"}) as http:
        for path in DATA_PATHS:
            missing = http.get(path)
            assert missing.status_code == 401, path
            assert missing.headers["www-authenticate"] == "Bearer"
            assert http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
            assert http.get(path, headers={"Authorization": "Basic s3cret"}).status_code == 401, path
            assert http.get(path, headers={"Authorization": "Bearer s3cret"}).status_code in (200, 503), path
        assert http.post(f"/api/jobs/{small_site.job_id}/retry").status_code == 401
        retried = http.post(f"/api/jobs/{small_site.job_id}/retry", headers={"Authorization": "Bearer s3cret"})
        assert retried.status_code == 200


def test_with_token_health_and_pages_are_open(small_site: Site) -> None:
    with small_site.client(client=REMOTE_CLIENT, http={"token": "s3cret"}) as http:
        assert http.get("/health").status_code == 200
        for page in ("/", f"/series/{small_site.series_id}", "/static/series.js", "/docs", "/redoc", "/openapi.json"):
            response = http.get(page)
            assert response.status_code == 200, page
        assert "<table id=\"series-table\">" in http.get("/").text


def test_without_token_loopback_is_served(small_site: Site) -> None:
    with small_site.client(client=LOOPBACK_CLIENT) as http:
        for path in DATA_PATHS + ["/", "/health"]:
            assert http.get(path).status_code in (200, 503), path


def test_without_token_other_clients_are_refused(small_site: Site) -> None:
    with small_site.client(client=REMOTE_CLIENT) as http:
        assert http.get("/health").status_code == 200
        for path in DATA_PATHS + ["/", f"/series/{small_site.series_id}", "/static/api.js"]:
            response = http.get(path)
            assert response.status_code == 403, path
            assert "loopback" in response.json()["detail"]
        assert http.post(f"/api/jobs/{small_site.job_id}/retry").status_code == 403


def test_api_docs_load_nothing_from_elsewhere(small_site: Site) -> None:
    """/docs and /redoc work offline: Swagger UI and ReDoc come from this server (a package's files), not a CDN."""
    with small_site.client(client=REMOTE_CLIENT, http={"token": "s3cret"}) as http:
        for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
            html = http.get(page).text
            assert "http://" not in html and "https://" not in html, page
            for asset in assets:
                assert f'"/static/docs/{asset}"' in html, asset
                assert http.get(f"/static/docs/{asset}").status_code == 200, asset


def test_named_tokens_alone_turn_token_mode_on(small_site: Site) -> None:
    with small_site.client(client=REMOTE_CLIENT, http={"tokens": {"ris": "ris-secret"}}) as http:
        assert http.get("/api/jobs").status_code == 401
        assert http.get("/api/jobs", headers={"Authorization": "Bearer ris-secret"}).status_code == 200


@pytest.mark.parametrize("tokens", [{"token": "same", "tokens": {"ris": "same"}}, {"tokens": {"ris": ""}}])
def test_tokens_are_non_empty_and_distinct(tokens: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="non-empty and distinct"):
        make_config(tmp_path, http=tokens)
