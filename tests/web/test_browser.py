"""The viewer in headless Chromium: the list shows the finished job, the series page its slices with masks.

Runs Debian's Chromium (never a downloaded browser) through Playwright against the
app served by the same HttpServer the node uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from dicom_node.web.api import create_app
from dicom_node.web.server import HttpServer
from tests.web.conftest import Site, free_port, tinted_pixels

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def base_url(site: Site) -> Iterator[str]:
    server = HttpServer(create_app(site.context()), "127.0.0.1", free_port())
    host, port = server.start()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh temporary profile (user data dir) of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def test_list_page_shows_the_job_done(browser: Browser, base_url: str, site: Site, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(f"{base_url}/")
    row = page.locator(f'tr[data-series-id="{site.series_id}"]')
    row.locator(".job .state").wait_for()
    assert row.locator(".job .state").inner_text() == "done"
    assert "1 failed" in row.inner_text()  # the export's state
    assert "148" in row.inner_text()
    page.screenshot(path=str(tmp_path / "list.png"))
    row.locator("a", has_text="view").click()
    page.wait_for_url(f"{base_url}/series/{site.series_id}")
    page.close()


def test_series_page_shows_slices_with_masks_probabilities_and_measurements(browser: Browser, base_url: str, site: Site, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(f"{base_url}/series/{site.series_id}")
    page.locator('#axial-img[data-overlay="1"]').wait_for(timeout=60000)
    page.locator('#coronal-img[data-overlay="1"]').wait_for(timeout=60000)

    assert page.locator("#baseline-banner").is_visible()
    assert page.locator("#axial-frame .edge-left").inner_text() == "R"  # the patient's right on the image left
    assert page.locator("#coronal-frame .edge-top").inner_text() == "S"
    probabilities = page.locator("#probabilities").inner_text()
    assert "non-COVID" in probabilities and "73.0 %" in probabilities and "27.0 %" in probabilities
    total_ml = site.result["measurements"]["lung_volume_ml"]["total"]
    lung_row = page.locator('#measurements tr[data-key="lung_volume_ml"]').inner_text()
    assert f"{total_ml:.0f}" in lung_row
    assert page.locator("#measurements tbody tr").count() == 4

    page.screenshot(path=str(tmp_path / "series.png"), full_page=True)
    axial = tinted_pixels(page.locator("#axial-img").screenshot(path=str(tmp_path / "axial.png")))
    assert all(count > 500 for count in axial.values()), axial
    coronal = tinted_pixels(page.locator("#coronal-img").screenshot())
    assert coronal["right_lung"] > 500 and coronal["left_lung"] > 500, coronal

    # Scrolling: the slider loads another slice; without masks no pixel is tinted.
    page.locator("#axial-slider").fill("10")
    page.locator('#axial-img[data-index="10"]').wait_for()
    page.locator("#overlay").uncheck()
    page.locator('#axial-img[data-overlay="0"]').wait_for()
    assert tinted_pixels(page.locator("#axial-img").screenshot()) == {"right_lung": 0, "left_lung": 0, "opacity": 0}
    page.close()


def test_with_a_token_the_page_asks_for_it_and_uses_it(browser: Browser, site: Site) -> None:
    server = HttpServer(create_app(site.context(http={"token": "s3cret"})), "127.0.0.1", free_port())
    host, port = server.start()
    try:
        page = browser.new_page()
        page.goto(f"http://{host}:{port}/")
        form = page.locator("#token-form")
        form.wait_for()
        assert page.locator("#status").inner_text() == "token required"
        form.locator("input[name=token]").fill("s3cret")
        form.locator("button").click()
        page.locator(f'tr[data-series-id="{site.series_id}"] .job .state').wait_for()
        assert form.is_hidden()
        page.goto(f"http://{host}:{port}/series/{site.series_id}")
        page.locator('#axial-img[data-overlay="1"]').wait_for()  # images are fetched with the token too
        page.close()
    finally:
        server.stop()
