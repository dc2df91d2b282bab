"""The viewer in headless Chromium: the list shows the finished job, the series page its slices with masks.

Runs Debian's Chromium (never a downloaded browser) through Playwright against the
real node that received and processed P001 (`processed_p001`: its HTTP server, its
worker's masks and results); the token test uses the app over the `site` data dir.
Screenshots are left in each test's tmp folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser

from dicom_node.output.display import shown
from dicom_node.web.api import create_app
from dicom_node.web.server import HttpServer
from tests.node_process import REPO
from tests.processed_node import ProcessedSeries
from tests.web.conftest import Site, free_port, tinted_pixels


def most_opaque_slice(processed: ProcessedSeries) -> int:
    with np.load(processed.node.data_dir / "results" / str(processed.job_id) / "masks.npz") as masks:
        return int(masks["opacity_mask"].sum(axis=(1, 2)).argmax())


def tinted_columns(png: bytes) -> dict[str, float]:
    """Mean column (0 = image left, 1 = image right) of the pixels tinted in each overlay colour."""
    width = Image.open(io.BytesIO(png)).width
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    masks = {"right_lung": (g - r > 25) & (g - b > 25), "left_lung": (b - r > 25) & (b - g > 10)}
    return {name: float(np.nonzero(mask)[1].mean()) / width for name, mask in masks.items()}


def test_list_page_shows_the_job_done(browser: Browser, processed_p001: ProcessedSeries, tmp_path: Path) -> None:
    base_url = processed_p001.http_url
    page = browser.new_page()
    page.goto(f"{base_url}/")
    row = page.locator(f'tr[data-series-id="{processed_p001.series_id}"]')
    row.locator(".job .state").wait_for()
    assert row.locator(".job .state").inner_text() == "done"
    assert "148" in row.inner_text() and "CT" in row.inner_text()
    assert "2020-03-05" in row.inner_text()  # the study date (DA 20200305) as a date
    page.screenshot(path=str(tmp_path / "list.png"))
    row.locator("a", has_text="view").click()
    page.wait_for_url(f"{base_url}/series/{processed_p001.series_id}")
    page.close()


def test_series_page_shows_the_headline_slices_with_masks_scores_and_measurements(
    browser: Browser, processed_p001: ProcessedSeries, tmp_path: Path
) -> None:
    job = httpx.get(f"{processed_p001.http_url}/api/jobs/{processed_p001.job_id}").json()
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(f"{processed_p001.http_url}/series/{processed_p001.series_id}")
    page.locator('#axial-img[data-overlay="1"]').wait_for(timeout=60000)
    page.locator('#coronal-img[data-overlay="1"]').wait_for(timeout=60000)

    assert page.locator("#baseline-banner").is_visible()
    assert "baseline" in page.locator("#model").inner_text()
    assert page.locator("#axial-frame .edge-left").inner_text() == "R"  # the patient's right on the image left
    assert page.locator("#axial-frame .edge-top").inner_text() == "A"
    assert page.locator("#coronal-frame .edge-top").inner_text() == "S"
    for plane in ("axial", "coronal"):  # the edge letters sit on the image, not beside it
        image = page.locator(f"#{plane}-img").bounding_box()
        for edge in ("left", "right", "top", "bottom"):
            letter = page.locator(f"#{plane}-frame .edge-{edge}").bounding_box()
            assert image["x"] <= letter["x"] and letter["x"] + letter["width"] <= image["x"] + image["width"], (plane, edge)
            assert image["y"] <= letter["y"] and letter["y"] + letter["height"] <= image["y"] + image["height"], (plane, edge)
    scores = page.locator("#scores").inner_text()
    for name, p in zip(job["result"]["classification"]["class_names"], job["result"]["classification"]["scores"]):
        assert f"{name} index" in scores and f"{p:.3f}" in scores  # the baseline's index, never a percentage
    assert "%" not in scores and "not a probability" in page.locator("#baseline-banner").inner_text()
    # The headline leads: P001's category with its nine criteria, and its fitness flags (the lung base is cut).
    headline = job["result"]["headline"]
    assert page.locator("#category").inner_text().startswith("Typical appearance")
    assert f"zone-based score {headline['zone_based_severity_score']}/30" in page.locator("#score").inner_text()
    assert page.locator("#criteria li").count() == 9
    flags = [flag["code"] for flag in job["result"]["fitness_flags"]]
    assert [page.locator("#fitness div").nth(i).get_attribute("data-code") for i in range(len(flags))] == flags
    assert headline["marked"] == bool(flags) and page.locator("#category").inner_text().endswith("(!)") == bool(flags)
    measurements = job["result"]["measurements"]
    lung_row = page.locator('#measurements tr[data-key="lung_volume_ml"]').inner_text()
    # As the summary page, the log and the CLI write them (output/display.py: 0.1 mL), without the unit in the cell.
    assert all(shown(measurements["lung_volume_ml"][side], "mL").removesuffix(" mL") in lung_row for side in ("right", "left", "total"))
    assert "Lung volume (mL)" in lung_row
    po_row = page.locator('#measurements tr[data-key="opacity_percent"]').inner_text()
    assert f"{measurements['opacity_percent']['total']:.2f}" in po_row
    assert page.locator("#measurements tbody tr").count() == 4
    assert page.locator("#steps tr").count() == len(job["steps"])

    # Axial slices scroll from the head, as in a PACS: the slider's first position is P001's head-end slice (z -52.1 mm).
    info = httpx.get(f"{processed_p001.http_url}/api/jobs/{processed_p001.job_id}/volume").json()
    count, positions = info["slices"]["axial"], info["positions_mm"]["axial"]
    page.locator("#axial-slider").fill("0")
    page.locator(f'#axial-img[data-index="{count - 1}"]').wait_for()
    assert page.locator("#axial-index").inner_text() == f"1 / {count}, z -52.1 mm"

    # The slice with the most opacity: both lungs and the opacity drawn, the right lung on the image left.
    index = most_opaque_slice(processed_p001)
    page.locator("#axial-slider").fill(str(count - 1 - index))
    page.locator(f'#axial-img[data-index="{index}"]').wait_for()
    assert page.locator("#axial-index").inner_text() == f"{count - index} / {count}, z {positions[index]:.1f} mm"
    page.screenshot(path=str(tmp_path / "series.png"), full_page=True)
    axial_png = page.locator("#axial-img").screenshot(path=str(tmp_path / "axial.png"))
    axial = tinted_pixels(axial_png)
    assert all(count > 500 for count in axial.values()), axial
    columns = tinted_columns(axial_png)
    assert columns["right_lung"] < 0.5 < columns["left_lung"], columns
    coronal_png = page.locator("#coronal-img").screenshot(path=str(tmp_path / "coronal.png"))
    coronal = tinted_pixels(coronal_png)
    assert coronal["right_lung"] > 500 and coronal["left_lung"] > 500, coronal
    columns = tinted_columns(coronal_png)
    assert columns["right_lung"] < 0.5 < columns["left_lung"], columns

    # Without masks no pixel is tinted.
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


@pytest.mark.parametrize("installed", [False, True])
def test_the_list_links_ohif_only_when_the_node_serves_it(browser: Browser, site: Site, tmp_path: Path, installed: bool) -> None:
    """An image or a checkout without the viewer (http.ohif_dir empty) shows no OHIF link that would answer 404."""
    ohif_dir = REPO / ".cache" / "ohif" if installed else tmp_path / "no-ohif"
    if installed and not (ohif_dir / "index.html").is_file():
        pytest.skip(f"OHIF is not installed in {ohif_dir} (make ohif)")
    server = HttpServer(create_app(site.context(http={"ohif_dir": str(ohif_dir)})), "127.0.0.1", free_port())
    host, port = server.start()
    try:
        page = browser.new_page()
        page.goto(f"http://{host}:{port}/")
        row = page.locator(f'tr[data-series-id="{site.series_id}"]')
        row.locator(".job .state").wait_for()
        assert row.locator("a.ohif").count() == (1 if installed else 0)
        page.close()
    finally:
        server.stop()
