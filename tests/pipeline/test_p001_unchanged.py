"""The COVID-19 pipeline as a plug-in writes for P001 what it wrote before it was one: the same files in the same
order, with the same UIDs and the same pixels.

`p001_result_digests.json` was written by `result_digests.py` run on main at 3d41443 (before the plug-ins,
`run_covid19` + `write_results`), with the same input digest; the creation dates and times differ, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipelines.protocol import ResultTarget
from dicom_node.pipelines.registry import pipeline
from tests.pipeline.conftest import real_series
from tests.pipeline.result_digests import digests, job_input_of

REFERENCE = Path(__file__).with_name("p001_result_digests.json")


def test_p001_results_keep_their_uids_and_pixels(p001_result: PipelineResult, tmp_path: Path) -> None:
    covid = pipeline("covid19_ct")
    out_dir = tmp_path / "results" / "1"
    out_dir.mkdir(parents=True)

    manifest = covid.write(p001_result, ResultTarget(out_dir, tmp_path, job_input_of(real_series("covid-ct-md/P001"))))

    written = digests(out_dir, [tmp_path / name for name in manifest.dicom_files()])
    assert written == json.loads(REFERENCE.read_text())
    assert manifest.files.masks and manifest.files.json_file and manifest.files.csv
