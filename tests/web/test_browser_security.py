"""CSRF, DNS rebinding and the CSP tried from headless Chromium, as an attacker's page would.

The browser resolves `attacker.test` and `rebind.test` to 127.0.0.1 (`FOREIGN_HOSTS`
in conftest): a page from `http://attacker.test:<port>` is another site to it, and
`http://rebind.test:<node port>` is what a DNS-rebinding attacker's name looks like
once it points at the node.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser

from dicom_node.web.api import create_app
from dicom_node.web.server import HttpServer
from tests.web.conftest import Site, free_port


def serve(site: Site) -> tuple[HttpServer, str]:
    """The node's HTTP server over `site` (tokenless, loopback only: the default) and its URL."""
    server = HttpServer(create_app(site.context()), "127.0.0.1", free_port())
    host, port = server.start()
    return server, f"http://{host}:{port}"


@pytest.fixture
def node(small_site: Site) -> Iterator[str]:
    """The node's URL over a data dir with a failed job and a failed export."""
    server, url = serve(small_site)
    yield url
    server.stop()


@pytest.fixture
def attacker_site() -> Iterator[tuple[int, dict[str, str]]]:
    """Another web server on loopback; the test puts the page it serves at "/" in the returned dict."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], pages
    server.shutdown()
    server.server_close()


def states(site: Site, browser: Browser, node: str) -> tuple[str, str]:
    """The job's and the export's state, read through the node's own page (same origin)."""
    page = browser.new_page()
    page.goto(f"{node}/")
    job = page.evaluate(f"async () => (await (await fetch('/api/jobs/{site.job_id}')).json()).state")
    export = page.evaluate(f"async () => (await (await fetch('/api/exports/{site.export_id}')).json()).state")
    page.close()
    return job, export


def test_a_cross_site_form_and_fetch_do_not_retry_anything(browser: Browser, small_site: Site, node: str, attacker_site) -> None:  # type: ignore[no-untyped-def]
    port, pages = attacker_site
    pages["/"] = f"""<!doctype html><html><body>
      <form id="csrf" method="POST" action="{node}/api/jobs/{small_site.job_id}/retry" enctype="text/plain">
        <input name="x" value="1"></form>
      <script>
        fetch("{node}/api/exports/{small_site.export_id}/retry",
              {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body: "x=1"}})
          .finally(() => document.getElementById("csrf").submit());
      </script></body></html>"""
    page = browser.new_page()
    with page.expect_navigation(url=f"{node}/api/jobs/{small_site.job_id}/retry") as navigation:
        page.goto(f"http://attacker.test:{port}/")
    response = navigation.value
    assert response is not None and response.status == 403
    assert "cross-origin POST refused" in page.inner_text("body")
    page.close()
    assert states(small_site, browser, node) == ("failed", "failed")

    # The same requests from the node's own page go through: the refusal above is about where they came from.
    page = browser.new_page()
    page.goto(f"{node}/")
    status = page.evaluate(f"async () => (await fetch('/api/jobs/{small_site.job_id}/retry', {{method: 'POST'}})).status")
    assert status == 200
    page.close()
    assert states(small_site, browser, node)[0] == "queued"


def test_a_rebound_name_reads_nothing(browser: Browser, small_site: Site, node: str) -> None:
    port = node.rsplit(":", 1)[1]
    page = browser.new_page()
    response = page.goto(f"http://rebind.test:{port}/api/series")
    assert response is not None and response.status == 400
    assert "rebind.test" in page.inner_text("body")
    # What the attacker's script would do once its name points at the node: same origin for the browser.
    body = page.evaluate("async () => { const r = await fetch('/api/studies'); return r.status + ' ' + await r.text(); }")
    assert body.startswith("400 ") and "patient" not in body
    retry = page.evaluate(f"async () => (await fetch('/api/jobs/{small_site.job_id}/retry', {{method: 'POST'}})).status")
    assert retry == 400
    page.close()
    assert states(small_site, browser, node) == ("failed", "failed")


def test_the_viewer_runs_under_its_content_security_policy(browser: Browser, site: Site) -> None:
    """The series page with slices, masks, score bars and legend swatches: no CSP violation, nothing blocked."""
    server, url = serve(site)
    try:
        page = browser.new_page()
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None)
        page.add_init_script("document.addEventListener('securitypolicyviolation', e => console.error("
                             "'Content Security Policy violated: ' + e.violatedDirective + ' ' + e.blockedURI));")
        response = page.goto(f"{url}/series/{site.series_id}")
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        page.locator('#axial-img[data-overlay="1"]').wait_for(timeout=60000)
        page.locator("#scores tr").first.wait_for()
        assert page.locator("#scores .bar span").first.evaluate("e => e.style.width") != ""
        page.goto(f"{url}/")
        page.locator(f'tr[data-series-id="{site.series_id}"] .job .state').wait_for()
        page.close()
        assert violations == []
    finally:
        server.stop()
