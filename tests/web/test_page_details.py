"""What a first-time user of the page notices, in headless Chromium: a wrong token is said to be wrong, a series
without results offers nothing to view, times carry their time zone, the tab has an icon."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from dicom_node.web.api import create_app
from dicom_node.web.server import HttpServer
from tests.web.conftest import Site, free_port

TOKEN = "s3cret"
LOCAL_ISO = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$")


@pytest.fixture
def page(browser: Browser, small_site: Site) -> Iterator[tuple[Page, str]]:
    """A page on a node with a token over a data dir whose only job failed (no results)."""
    server = HttpServer(create_app(small_site.context(http={"token": TOKEN})), "127.0.0.1", free_port())
    host, port = server.start()
    page = browser.new_page()
    try:
        yield page, f"http://{host}:{port}"
    finally:
        page.close()
        server.stop()


def enter_token(page: Page, token: str) -> None:
    form = page.locator("#token-form")
    form.wait_for()
    form.locator("input[name=token]").fill(token)
    form.locator("button").click()


def test_a_wrong_token_is_said_to_be_wrong(page: tuple[Page, str]) -> None:
    tab, url = page
    tab.goto(f"{url}/")
    enter_token(tab, "not-the-token")
    tab.locator("#token-form .token-error", has_text="did not accept").wait_for()
    assert tab.locator("#status").inner_text() == "wrong token"
    enter_token(tab, TOKEN)
    tab.locator("tr[data-series-id] .job .state").wait_for()
    assert tab.locator("#token-form").is_hidden()


def test_a_series_without_results_offers_nothing_to_view_and_times_have_their_zone(page: tuple[Page, str], small_site: Site) -> None:
    tab, url = page
    tab.goto(f"{url}/")
    enter_token(tab, TOKEN)
    row = tab.locator(f'tr[data-series-id="{small_site.series_id}"]')
    row.locator(".job .state", has_text="failed").wait_for()
    assert row.locator("a", has_text="view").count() == 0
    received = row.locator("td").first.inner_text()
    assert LOCAL_ISO.match(received), received
    assert re.search(r"updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d", tab.locator("#status").inner_text())

    tab.goto(f"{url}/series/{small_site.series_id}")  # typed by hand: it says why there is nothing to see
    tab.locator("#status", has_text="nothing to view").wait_for()
    assert tab.locator("#status").inner_text() == "nothing to view: the job is failed (series rejected: too few slices)"
    assert tab.locator("#viewer").is_hidden()


def test_the_tab_has_an_icon(page: tuple[Page, str]) -> None:
    tab, url = page
    tab.goto(f"{url}/")
    href = tab.locator("link[rel=icon]").get_attribute("href")
    icon = tab.request.get(f"{url}{href}")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml") and b"<svg" in icon.body()
