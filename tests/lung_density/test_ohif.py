"""P001 through both pipelines on one AE, and OHIF served by the node shows both result sets over the CT.

One node whose called AE CLARA runs `["covid19_ct", "lung_density"]` receives P001 by storescu; both jobs finish
done. In headless Chromium with no network but the node (`tests/web/ohif.py`), the study browser lists both SRs and
both SEGs; each SEG in turn, loaded over the CT in a fresh viewer, has its three segments listed and drawn in their
colours. Slow: both pipelines on P001 and two viewer starts on a shared 2-core machine. Screenshots are left in the
test's tmp folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from dicom_node.output.series import SR_DESCRIPTION
from dicom_node.output.seg import LEFT_LUNG, RIGHT_LUNG
from dicom_node.pipelines.lung_density import write
from dicom_node.pipelines.lung_density.settings import LungDensitySettings
from tests.processed_node import ProcessedSeries, process_p001
from tests.web.ohif import COVID19_SEG, SegView, blue, green, open_seg_over_ct, yellow

pytestmark = pytest.mark.slow
PIPELINES = ("covid19_ct", "lung_density")
LOW_ATTENUATION = write.low_attenuation_segment(LungDensitySettings().threshold_hu).label  # "Lung below -950 HU"
LUNG_DENSITY_SEG = SegView(
    write.SEG_DESCRIPTION,
    (RIGHT_LUNG.label, LEFT_LUNG.label, LOW_ATTENUATION),
    LOW_ATTENUATION,  # the slice with the most low-attenuation voxels shows the lungs too
    {RIGHT_LUNG.label: green, LEFT_LUNG.label: blue, LOW_ATTENUATION: yellow},
)


@pytest.fixture(scope="module")
def both_pipelines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ProcessedSeries]]:
    """P001 received on CLARA bound to both pipelines (no `--ae`, which would bind it to the COVID-19 one alone)."""
    settings = {"dicom": {"called_aes": [{"ae_title": "CLARA", "pipelines": list(PIPELINES)}]}}
    with process_p001(tmp_path_factory.mktemp("both-pipelines-node"), settings, bind_ae=False, pipelines=PIPELINES) as processed:
        yield processed


def test_ohif_shows_both_pipelines_segs_over_the_ct_and_lists_both_srs(
    browser: Browser, both_pipelines: dict[str, ProcessedSeries], tmp_path: Path
) -> None:
    for pipeline, processed in both_pipelines.items():
        assert processed.state == "done", f"{pipeline}: {processed.reason}\n{processed.node.log()[-3000:]}"
    p001 = both_pipelines["lung_density"]
    assert both_pipelines["covid19_ct"].job_id != p001.job_id
    counts = open_seg_over_ct(
        browser, p001.http_url, p001.series_id, p001.study_instance_uid, 148, tmp_path,
        (COVID19_SEG, LUNG_DENSITY_SEG), (SR_DESCRIPTION, write.SR_DESCRIPTION),
    )
    print(counts)
    for seg in (COVID19_SEG, LUNG_DENSITY_SEG):
        assert all(pixels > 200 for pixels in counts[seg.description].values()), (seg.description, counts)
