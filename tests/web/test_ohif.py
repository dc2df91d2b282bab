"""OHIF, served by the node, shows P001 with the node's SEG and SR, in headless Chromium with no network but the node.

One browser session (OHIF is heavy): the viewer opens the study from the
series list's link, the CT is drawn, the SR and the SEG are listed, and the
SEG's three segments are listed and drawn over the CT in their colours.
Every request to another host is blocked and recorded: the test fails if any
was made. Screenshots are left in the test's tmp folder.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route

from dicom_node.output.series import SEG_DESCRIPTION, SR_DESCRIPTION
from tests.export.peers import wait_for
from tests.node_process import REPO
from tests.processed_node import ProcessedSeries

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SEGMENTS = ("Right lung", "Left lung", "Lung opacity")
FIRST_IMAGE_MS = 240_000  # OHIF's first image on a busy 2-core box (about 40 s when the box is idle)
SEG_MS = 300_000


def colour_pixels(png: bytes) -> dict[str, int]:
    """How many pixels of the image's middle have each segment's colour (the SEG's display colours over grey).

    The middle only: OHIF's blue icons and scrollbar sit on the viewport's edges and corners.
    """
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    height, width = rgb.shape[:2]
    rgb = rgb[height // 8 : height * 7 // 8, width // 8 : width * 7 // 8]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return {
        "Right lung": int(((b - r > 40) & (b - g > 15)).sum()),  # (80, 160, 255)
        "Left lung": int(((g - r > 40) & (g - b > 15)).sum()),  # (80, 255, 160)
        "Lung opacity": int(((r - b > 60) & (r - g > 30)).sum()),  # (255, 120, 40)
    }


def viewport_png(page: Page) -> bytes:
    return page.locator("canvas.cornerstone-canvas").first.screenshot()


def test_ohif_shows_the_ct_with_the_nodes_seg_and_sr(browser: Browser, processed_p001: ProcessedSeries, tmp_path: Path) -> None:
    assert processed_p001.state == "done", processed_p001.reason
    counts = open_seg_over_ct(browser, processed_p001.http_url, processed_p001.series_id, processed_p001.study_instance_uid, 148, tmp_path)
    assert all(counts[label] > 200 for label in SEGMENTS), counts


def open_seg_over_ct(browser: Browser, http_url: str, series_id: int, study_uid: str, slices: int, tmp_path: Path) -> dict[str, int]:
    """Open the study from the node's series list in OHIF, draw the CT, open the SEG over it; return the pixels of
    each segment's colour in the viewport. Fails if the CT is not drawn, the SR or a segment is not listed, or any
    request leaves loopback. Screenshots are left in `tmp_path`."""
    if not (REPO / ".cache" / "ohif" / "index.html").is_file():
        pytest.skip("OHIF is not installed in .cache/ohif: run `make ohif`")
    elsewhere: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname in LOOPBACK:
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        context.route("**/*", only_loopback)
        # A returning user: OHIF's guided tour (shown once per browser) would dim the viewport.
        context.add_init_script("localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))")
        page = context.new_page()
        page.set_default_timeout(60_000)

        # The series list links the study to OHIF.
        page.goto(f"{http_url}/")
        link = page.locator(f'tr[data-series-id="{series_id}"] a.ohif')
        link.wait_for()
        assert link.get_attribute("href") == f"/ohif/viewer?StudyInstanceUIDs={study_uid}"
        link.click(timeout=120_000, no_wait_after=True)

        # Other tests of the session may have added instances to this study, which OHIF shows as further display
        # sets of the CT series: load the one of the source's slices into the viewport from its thumbnail.
        page.get_by_text(str(slices), exact=True).first.dblclick(timeout=FIRST_IMAGE_MS)
        page.get_by_text(f"(1/{slices})").wait_for(timeout=FIRST_IMAGE_MS)  # the CT's first image is drawn
        def drawn() -> bytes | None:
            png = viewport_png(page)
            return png if np.asarray(Image.open(io.BytesIO(png)).convert("L")).std() > 20 else None

        ct_png = wait_for(drawn, FIRST_IMAGE_MS / 1000, "the CT drawn in the viewport", interval=1.0)
        page.screenshot(path=str(tmp_path / "ohif-ct.png"))
        (tmp_path / "ohif-ct-viewport.png").write_bytes(ct_png)
        assert max(colour_pixels(ct_png).values()) < 50  # grey CT, nothing drawn over it yet
        window = page.get_by_text("W:").first.locator("..").inner_text()
        assert "1500" in window and "-600" in window, window  # the lung window, not the header's first (W350 L50)

        # The node's results are listed in the study browser: the SR and the SEG.
        assert page.get_by_text(SR_DESCRIPTION).first.is_visible()
        page.get_by_text(SEG_DESCRIPTION).first.dblclick()  # loaded over the CT at once: no question first
        page.locator('[data-cy^="panelSegmentation"]').first.click()  # open the segmentation panel (right side)
        for label in SEGMENTS:
            page.get_by_text(label, exact=True).first.wait_for(timeout=SEG_MS)
        page.get_by_text("Loading SEG...").wait_for(state="hidden", timeout=SEG_MS)
        assert page.get_by_text("Do you want to open this Segmentation?").count() == 0
        # Clicking a segment moves the viewport to it: the opacity's slice shows all three.
        page.get_by_text("Lung opacity", exact=True).first.click()
        page.wait_for_timeout(3_000)
        page.screenshot(path=str(tmp_path / "ohif-seg.png"))
        overlay = viewport_png(page)
        window = page.get_by_text("W:").first.locator("..").inner_text()
        assert "1500" in window and "-600" in window, window  # still the lung window under the SEG
        (tmp_path / "ohif-seg-viewport.png").write_bytes(overlay)
    finally:
        if context.pages:  # what the page showed last, for a person to look at
            context.pages[0].screenshot(path=str(tmp_path / "ohif-last.png"))
        context.close()

    assert elsewhere == [], f"requests left loopback: {elsewhere}"
    return colour_pixels(overlay)
