"""What a radiologist sees in a plain PACS: Orthanc Explorer, after the node sent its results back.

Orthanc routes P001 to the node (default trigger: the job starts when Orthanc's
association is released); the node sends SEG, SR, the summary page and the key
images back. Headless Chromium (Debian's, through Playwright) opens the study in
Orthanc's own web UI: the derived series are listed with dates and readable
descriptions, their instances listed, and the summary page and a key image shown
as Orthanc renders them (its instance preview). Screenshots are
left in the test's tmp folder. Then Orthanc forwards the whole study to the node,
as a routing rule would: the node stores its own results but starts no job.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, sync_playwright

from tests.export.peers import P001, Orthanc, wait_for
from tests.export.test_end_to_end import PIPELINE_SECONDS, all_sent
from tests.node.index import jobs, query
from tests.node_process import NodeProcess
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS

SUMMARY = "AI summary: RSNA category, severity score, lung opacity"
KEY_IMAGES = "AI key images: lung opacity outlined"


def coloured_fraction(png: bytes) -> float:
    """Share of pixels that are clearly not grey: outlines, legend and table colours."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)
    return float((spread > 60).mean())


def open_series_preview(page: Page, pacs: Orthanc, series_id: str, path: Path) -> bytes:
    """Orthanc Explorer's page of the series (its instances listed), then the first instance's preview: the image
    Orthanc's web UI renders for it, as the browser shows it."""
    page.goto(f"{pacs.url}/app/explorer.html#series?uuid={series_id}")
    page.locator("#list-instances li a").first.wait_for(timeout=30000)
    page.screenshot(path=str(path.with_name(path.stem + "-series.png")))
    instance = pacs.get(f"/series/{series_id}/instances")[0]["ID"]
    page.goto(f"{pacs.url}/instances/{instance}/preview")
    image = page.locator("img").first
    image.wait_for(timeout=30000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=30000)
    page.screenshot(path=str(path))
    return image.screenshot()


@pytest.mark.slow  # 20 s of browser; the default suite checks the results arrive in Orthanc (tests/export/test_end_to_end.py)
def test_orthanc_explorer_shows_the_summary_page_and_key_images(
    orthanc_factory: Callable[..., Orthanc], node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    pacs = orthanc_factory(start=False)
    # Default trigger and export timing: only the ports and the worker differ from a fresh installation.
    node = node_factory(settings={"jobs": {"workers": 1, "settle_seconds": 0.0, "poll_seconds": 1.0}}, serve_args=("--export-to", pacs.address))
    pacs.add_modality("NODE", node.ae, node.port)
    pacs.start()
    series_uid = pacs.load_series(P001)
    node.start(timeout=120)
    pacs.send_series("NODE", series_uid)
    wait_for(lambda: all_sent(node.data_dir), PIPELINE_SECONDS, "the results to be sent back", interval=0.5)

    study_id = pacs.get(f"/series/{pacs.lookup(series_uid, 'Series')}/study")["ID"]
    derived = {s["MainDicomTags"].get("SeriesDescription"): s for s in pacs.get(f"/studies/{study_id}/series")}
    assert {SUMMARY, KEY_IMAGES, "AI lungs and lung opacity (segmentation)", "AI lung opacity report (RSNA category, volumes, PO, PHO)"} <= set(derived)
    assert all(derived[d]["MainDicomTags"].get("SeriesDate") for d in (SUMMARY, KEY_IMAGES))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{pacs.url}/app/explorer.html#study?uuid={study_id}")
            listed = page.locator("#list-series")
            listed.get_by_text(SUMMARY).wait_for(timeout=30000)
            listed.get_by_text(KEY_IMAGES).wait_for(timeout=30000)
            page.screenshot(path=str(tmp_path / "orthanc-study.png"), full_page=True)
            summary = open_series_preview(page, pacs, derived[SUMMARY]["ID"], tmp_path / "orthanc-summary.png")
            key_image = open_series_preview(page, pacs, derived[KEY_IMAGES]["ID"], tmp_path / "orthanc-key-image.png")
        finally:
            browser.close()
    assert coloured_fraction(summary) > 0.002, "the summary page shows no coloured text or legend"
    assert coloured_fraction(key_image) > 0.002, "the key image shows no outlines"

    # A routing rule that forwards the whole study brings the node's own results back: stored, no job.
    before = jobs(node.data_dir)
    pacs.post(f"/modalities/NODE/store", {"Resources": [study_id], "Synchronous": True})
    ours = {s["MainDicomTags"]["SeriesInstanceUID"] for s in derived.values()}
    stored = {uid for (uid,) in query(node.data_dir, "SELECT series_instance_uid FROM series")}
    assert ours <= stored
    time.sleep(2.0)  # two scheduler polls after the release (it is also woken by the release itself)
    assert jobs(node.data_dir) == before, "the node's own results started a job"
    assert "skipped" not in node.log()
