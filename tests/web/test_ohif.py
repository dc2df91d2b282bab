"""OHIF, served by the node, shows P001 with the node's SEG and SR, in headless Chromium with no network but the node.

One browser session (OHIF is heavy): the viewer opens the study from the
series list's link, the CT is drawn, the SR and the SEG are listed, and the
SEG's three segments are listed and drawn over the CT in their colours.
Every request to another host is blocked and recorded: the test fails if any
was made. Screenshots are left in the test's tmp folder. The steps are
`tests/web/ohif.py`'s, shared with the other pipelines' viewer tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from dicom_node.output.series import SR_DESCRIPTION
from tests.processed_node import ProcessedSeries
from tests.web.ohif import COVID19_SEG, open_seg_over_ct


@pytest.mark.slow  # 20-50 s of headless Chromium: outside the default suite's budget
def test_ohif_shows_the_ct_with_the_nodes_seg_and_sr(browser: Browser, processed_p001: ProcessedSeries, tmp_path: Path) -> None:
    assert processed_p001.state == "done", processed_p001.reason
    counts = open_seg_over_ct(
        browser, processed_p001.http_url, processed_p001.series_id, processed_p001.study_instance_uid, 148, tmp_path,
        (COVID19_SEG,), (SR_DESCRIPTION,),
    )
    assert all(pixels > 200 for pixels in counts[COVID19_SEG.description].values()), counts
