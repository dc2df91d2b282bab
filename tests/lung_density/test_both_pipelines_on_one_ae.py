"""The shared real scans sent by a PACS to one AE bound to both pipelines: two jobs per series, two result sets back.

Orthanc holds P001, normal001 and the A0002 kernel pair and routes them to the node's CLARA, configured with
`pipelines = ["covid19_ct", "lung_density"]` and both pipelines' results routed back to Orthanc. Each series gets
a COVID-19 job and a lung-density job, and Orthanc ends with both result sets in each study (SEG, SR, summary page
and key images of each pipeline, told apart by their descriptions). The kernel pair's RA-950 difference is read
from the jobs' manifests (docs/validation.md). Slow: both pipelines on four series on a shared 2-core machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dicom_node.pipelines.lung_density.manifest import LungDensityManifest
from tests.export.conftest import export_rows, orthanc_factory  # noqa: F401  (the Orthanc fixture of tests/export)
from tests.export.peers import Orthanc, wait_for
from tests.node.index import query
from tests.node_process import NodeProcess, shared_series

pytestmark = pytest.mark.slow
SERIES = [("covid-ct-md", "P001"), ("covid-ct-md", "normal001"), ("lung-pet-ct-dx", "A0002-B70f"), ("lung-pet-ct-dx", "A0002-B40f")]
SECONDS = 1200  # four series through both pipelines, the two 150-slice scans' COVID-19 jobs taking most
COVID_DESCRIPTIONS = {
    "AI lungs and lung opacity (segmentation)", "AI lung opacity report (RSNA category, volumes, PO, PHO)",
    "AI summary: RSNA category, severity score, lung opacity", "AI key images: lung opacity outlined",
}
DENSITY_DESCRIPTIONS = {
    "AI lungs and low-attenuation lung (segmentation)", "AI lung density report (RA-950, Perc15, lung volume)",
    "AI summary: lung density (QIBA CT lung densitometry)", "AI key image: low-attenuation lung outlined",
}


def done_jobs(data_dir: Path) -> list[tuple[str, str, str, str]]:
    """(series UID, pipeline, state, result JSON) of every job."""
    return query(
        data_dir, "SELECT s.series_instance_uid, j.pipeline, j.state, j.result FROM job j JOIN series s ON s.id = j.series_fk"
    )


def test_both_pipelines_on_one_ae_give_two_result_sets_per_series_in_orthanc(
    orthanc_factory: Callable[..., Orthanc], node_factory: Callable[..., NodeProcess]  # noqa: F811
) -> None:
    pacs = orthanc_factory(start=False)
    settings = {
        "jobs": {"workers": 1, "settle_seconds": 0.0, "poll_seconds": 1.0},
        "dicom": {"called_aes": [{"ae_title": "CLARA", "pipelines": ["covid19_ct", "lung_density"]}]},
        "destinations": [{"name": "PACS", "ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.dicom_port}],
        "pipelines": {"covid19_ct": {"destinations": ["PACS"]}, "lung_density": {"destinations": ["PACS"]}},
    }
    node = node_factory(settings=settings, bind_ae=False)  # `--ae` would bind CLARA to the COVID-19 pipeline alone
    pacs.add_modality("NODE", node.ae, node.port)
    pacs.start()
    uids = {name: pacs.load_series(shared_series(folder, name)) for folder, name in SERIES}
    node.start(timeout=120)
    for uid in uids.values():
        pacs.send_series("NODE", uid)

    def finished() -> bool:
        rows = done_jobs(node.data_dir)
        rows_sent = export_rows(node.data_dir)
        return len(rows) == 2 * len(uids) and {r[2] for r in rows} == {"done"} and bool(rows_sent) and {r["state"] for r in rows_sent} == {"sent"}

    wait_for(finished, SECONDS, "both pipelines' jobs of every series done and their results sent")
    jobs = done_jobs(node.data_dir)
    assert sorted((uid, pipeline) for uid, pipeline, _, _ in jobs) == sorted(
        (uid, pipeline) for uid in uids.values() for pipeline in ("covid19_ct", "lung_density")
    )
    for name, uid in uids.items():
        study = pacs.get(f"/series/{pacs.lookup(uid, 'Series')}/study")["ID"]
        descriptions = {s["MainDicomTags"].get("SeriesDescription") for s in pacs.get(f"/studies/{study}/series")}
        assert COVID_DESCRIPTIONS | DENSITY_DESCRIPTIONS <= descriptions, name

    density = {
        uid: LungDensityManifest.from_json(json.loads(result))
        for uid, pipeline, _, result in jobs
        if pipeline == "lung_density"
    }
    sharp, soft = density[uids["A0002-B70f"]], density[uids["A0002-B40f"]]
    difference = sharp.density.lungs["total"].ra950_percent - soft.density.lungs["total"].ra950_percent
    print(f"A0002 RA-950: B70f {sharp.headline.ra950_percent} %, B40f {soft.headline.ra950_percent} %, difference {difference:.2f} points")
    assert 3.0 < difference < 6.0
    assert "QIBAKERNEL" in {flag.code for flag in sharp.fitness_flags}
    assert "QIBAKERNEL" not in {flag.code for flag in soft.fitness_flags}
