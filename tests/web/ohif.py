"""Drive OHIF, served by a node, in headless Chromium with no network but the node: open a study from the node's
series list, draw its CT, then load each of the node's SEGs over it and count each segment's colour in the viewport.

What a SEG should look like is a `SegView` (its series description, its segments' labels, the segment whose click
shows them all, a colour test per segment), so that every pipeline's SEG is checked by the same steps.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route

from dicom_node.output.seg import LEFT_LUNG, OPACITY, RIGHT_LUNG
from dicom_node.output.series import SEG_DESCRIPTION
from tests.export.peers import wait_for
from tests.node_process import REPO

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FIRST_IMAGE_MS = 240_000  # OHIF's first image on a busy 2-core box (about 40 s when the box is idle)
SEG_MS = 300_000

# Which pixels of a screenshot (int RGB planes) carry a segment's display colour blended over the grey CT.
Tint = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def green(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The right lung's (0, 200, 80), the same in every pipeline's SEG (`dicom_node.output.seg.RIGHT_LUNG`)."""
    return (g - r > 40) & (g - b > 15)


def blue(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The left lung's (40, 120, 255) (`dicom_node.output.seg.LEFT_LUNG`)."""
    return (b - r > 40) & (b - g > 15)


def orange(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The lung opacity's (255, 60, 0) (`dicom_node.output.seg.OPACITY`)."""
    return (r - b > 60) & (r - g > 30)


def yellow(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The low-attenuation lung's (255, 220, 0) (`dicom_node.pipelines.lung_density.manifest.LOW_ATTENUATION_RGB`):
    bright, so not the olive of the orange opacity over the green lung (green at most 155, measured on P001)."""
    return (r - b > 60) & (g - b > 95) & (g > 170)


@dataclass(frozen=True)
class SegView:
    """One SEG as OHIF must show it: listed under `description`, its `segments` in the segmentation panel, and
    after a click on `shown_by` (OHIF moves the viewport to that segment) each segment's colour (`tints`) drawn."""

    description: str
    segments: tuple[str, ...]
    shown_by: str
    tints: Mapping[str, Tint]

    def __post_init__(self) -> None:
        if self.shown_by not in self.segments or set(self.tints) != set(self.segments):
            raise ValueError(f"{self.description}: the clicked segment and the colour tests must be the SEG's segments")


COVID19_SEG = SegView(
    SEG_DESCRIPTION,
    (RIGHT_LUNG.label, LEFT_LUNG.label, OPACITY.label),
    OPACITY.label,  # the opacity's slice shows all three
    {RIGHT_LUNG.label: green, LEFT_LUNG.label: blue, OPACITY.label: orange},
)


def colour_pixels(png: bytes, tints: Mapping[str, Tint]) -> dict[str, int]:
    """How many pixels of the image's middle pass each segment's colour test.

    The middle only: OHIF's blue icons and scrollbar sit on the viewport's edges and corners.
    """
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    height, width = rgb.shape[:2]
    rgb = rgb[height // 8 : height * 7 // 8, width // 8 : width * 7 // 8]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return {label: int(tint(r, g, b).sum()) for label, tint in tints.items()}


def viewport_png(page: Page) -> bytes:
    return page.locator("canvas.cornerstone-canvas").first.screenshot()


def assert_lung_window(page: Page) -> None:
    window = page.get_by_text("W:").first.locator("..").inner_text()
    assert "1500" in window and "-600" in window, window  # the lung window, not the header's first (W350 L50)


def open_seg_over_ct(
    browser: Browser, http_url: str, series_id: int, study_uid: str, slices: int, tmp_path: Path,
    segs: Sequence[SegView], reports: Sequence[str],
) -> dict[str, dict[str, int]]:
    """Open the study from the node's series list in OHIF, draw the CT, then open each of `segs` over it in turn;
    return, per SEG description, the pixels of each segment's colour in the viewport once that SEG is shown.

    Fails if the CT is not drawn, a report (SR description) of `reports`, a SEG or a segment is not listed, or any
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
    counts: dict[str, dict[str, int]] = {}
    try:
        context.route("**/*", only_loopback)
        # A returning user: OHIF's guided tour (shown once per browser) would dim the viewport.
        context.add_init_script("localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']))")
        page = context.new_page()
        page.set_default_timeout(60_000)
        # A fresh viewer for each SEG, so that each is drawn over the CT alone: the pipelines' lungs share colours.
        for number, seg in enumerate(segs, 1):
            open_ct(page, http_url, series_id, study_uid, slices, segs, tmp_path / f"ohif-ct-{number}")
            for report in reports:  # the node's results are listed in the study browser
                assert page.get_by_text(report).first.is_visible(), report
            counts[seg.description] = show_seg(page, seg, tmp_path / f"ohif-seg-{number}")
    finally:
        if context.pages:  # what the page showed last, for a person to look at
            context.pages[0].screenshot(path=str(tmp_path / "ohif-last.png"))
        context.close()

    assert elsewhere == [], f"requests left loopback: {elsewhere}"
    return counts


def open_ct(page: Page, http_url: str, series_id: int, study_uid: str, slices: int, segs: Sequence[SegView], screenshots: Path) -> None:
    """Open the study in OHIF from the node's series list and draw the CT of `slices` slices in the viewport, grey
    (no colour of `segs`) and in the lung window (screenshots: `screenshots`*.png)."""
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
    page.screenshot(path=f"{screenshots}.png")
    Path(f"{screenshots}-viewport.png").write_bytes(ct_png)
    for seg in segs:
        assert max(colour_pixels(ct_png, seg.tints).values()) < 50  # grey CT, nothing drawn over it yet
    assert_lung_window(page)


def show_seg(page: Page, seg: SegView, screenshots: Path) -> dict[str, int]:
    """Load `seg` from the study browser over the CT in the viewport, wait for its segments to be listed, click
    `seg.shown_by`; return each segment's colour count in the viewport (screenshots: `screenshots`*.png)."""
    page.get_by_text(seg.description).first.dblclick()  # loaded over the CT at once: no question first
    page.locator('[data-cy^="panelSegmentation"]').first.click()  # open the segmentation panel (right side)
    for label in seg.segments:
        page.get_by_text(label, exact=True).first.wait_for(timeout=SEG_MS)
    page.get_by_text("Loading SEG...").wait_for(state="hidden", timeout=SEG_MS)
    assert page.get_by_text("Do you want to open this Segmentation?").count() == 0
    page.get_by_text(seg.shown_by, exact=True).first.click()  # the viewport moves to the segment
    page.wait_for_timeout(3_000)
    page.screenshot(path=f"{screenshots}.png")
    overlay = viewport_png(page)
    assert_lung_window(page)  # still the lung window under the SEG
    Path(f"{screenshots}-viewport.png").write_bytes(overlay)
    return colour_pixels(overlay, seg.tints)
