"""A whole browser session against a node with a token (pages, API, DICOMweb, OHIF) leaves the token in no log and
in no URL: headless Chromium types it once, gets the session cookie, and everything after goes with the cookie.

The campaign found the token three times in the access log: OHIF's link carried it as `?token=`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser

from dicom_node.web.api import create_app
from dicom_node.web.server import HttpServer
from dicom_node.web.session import COOKIE
from tests.web.conftest import Site, free_port

TOKEN = "browser-session-token-7f3a9c"
OHIF_SECONDS = 180  # OHIF's first DICOMweb request on a busy 2-core box


@pytest.mark.slow  # P001 and OHIF in Chromium: about two minutes on a 2-core box
def test_a_full_session_leaves_the_token_in_no_log_and_no_url(browser: Browser, site: Site, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    if not (Path(".cache/ohif") / "index.html").is_file():
        pytest.skip("OHIF is not installed in .cache/ohif: run `make ohif`")
    access_log = tmp_path / "access.log"
    server = HttpServer(create_app(site.context(http={"token": TOKEN, "access_log": str(access_log)})), "127.0.0.1", free_port())
    host, port = server.start()
    url = f"http://{host}:{port}"
    urls: list[str] = []
    caplog.set_level(logging.DEBUG)
    try:
        context = browser.new_context()
        page = context.new_page()
        page.on("request", lambda request: urls.append(request.url))
        page.goto(f"{url}/")
        form = page.locator("#token-form")
        form.wait_for()
        form.locator("input[name=token]").fill(TOKEN)
        form.locator("button").click()
        row = page.locator(f'tr[data-series-id="{site.series_id}"]')
        row.locator(".job .state").wait_for()
        (cookie,) = context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (COOKIE, True, "Strict", False)
        assert page.evaluate("document.cookie") == ""  # no script can read it

        page.goto(f"{url}/series/{site.series_id}")
        page.locator('#axial-img[data-overlay="1"]').wait_for()  # images and results with the cookie

        page.goto(f"{url}/")
        ohif = row.locator("a.ohif").get_attribute("href")
        assert ohif is not None and ohif.startswith("/ohif/viewer?")
        with page.expect_response(lambda r: "/dicomweb/studies" in r.url and r.status == 200, timeout=OHIF_SECONDS * 1000):
            page.goto(f"{url}{ohif}")  # OHIF reads the node's DICOMweb with the browser's cookie
        context.close()

        bearer = {"Authorization": f"Bearer {TOKEN}"}  # a script, with the header
        assert requests.get(f"{url}/api/jobs/{site.job_id}", headers=bearer, timeout=30).status_code == 200
        assert requests.get(f"{url}/dicomweb/studies", headers=bearer, timeout=30).status_code == 200
        assert requests.get(f"{url}/metrics", headers=bearer, timeout=30).status_code == 200
    finally:
        server.stop()
    assert not [u for u in urls if TOKEN in u]
    logs = {"access log": access_log.read_text(), "node log": caplog.text}
    logs |= {str(path): path.read_text(errors="replace") for path in site.data_dir.rglob("*.log")}
    assert len(logs["access log"].splitlines()) > 10
    for name, text in logs.items():
        assert TOKEN not in text, f"the token is in the {name}"
