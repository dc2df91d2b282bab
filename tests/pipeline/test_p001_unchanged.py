"""What the COVID-19 pipeline writes for P001 is fixed for its algorithm version: the same files in the same order,
with the same UIDs and the same pixels. Result UIDs derive from the version and the input, so output that changes
under an unchanged version would reach a PACS under the UIDs of different content; a change of output bumps the
version (`pipelines/covid19/plugin.py`) and records the new digests:
`python -m tests.pipeline.result_digests ../shared/data/covid-ct-md/P001 > tests/pipeline/p001_result_digests.json`.

The plug-in seam itself was proven byte-identical against main at 3d41443 (before the plug-ins) with this test at
commit bc7437e; issue 22's opacity method then changed the opacity (versions 0.2.0 and 0.3.0).
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
    recorded = json.loads(REFERENCE.read_text())
    assert recorded["algorithm_version"] == covid.algorithm.version, "a new version: record its digests (the docstring says how)"
    assert written == recorded["files"], f"P001's result changed under version {covid.algorithm.version}: bump it, then record"
    assert manifest.files.masks and manifest.files.json_file and manifest.files.csv
