"""The result manifest: typed, self-validating, a JSON round trip, and the job rows of earlier versions still read."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from pydantic import ValidationError

from dicom_node.output.seg import SEGMENTS
from dicom_node.pipelines.covid19.manifest import OVERLAYS, Covid19Manifest
from dicom_node.pipelines.manifest import ResultManifest
from dicom_node.pipelines.registry import read_manifest

# A job row as main (3d41443) stored it for P001: the worker's result_summary, before manifests.
MAIN_ROW = {
    "files": {
        "seg": "results/7/seg.dcm",
        "sr": "results/7/sr.dcm",
        "csv": "results/7/result.csv",
        "json": "results/7/result.json",
        "masks": "results/7/masks.npz",
    },
    "secondary_capture": ["results/7/sc-001.dcm", "results/7/sc-002.dcm"],
    "summary": "results/7/summary.dcm",
    "warnings": [],
    "headline": {
        "category": "typical",
        "category_title": "Typical appearance",
        "zone_based_severity_score": 9,
        "opacity_percent": 7.8,
        "marked": False,
        "text": "Typical appearance; zone-based score 9/30, PO 7.8%",
    },
    "category": {
        "category": "typical",
        "title": "Typical appearance",
        "rule": "bilateral, peripheral, lower-zone ground glass",
        "source": "RSNA expert consensus (Simpson et al. 2020)",
        "criteria": [{"code": "OPACITY", "title": "Opacity above the detection floor", "met": True, "detail": "280.4 mL of opacity"}],
    },
    "fitness_flags": [],
    "input": {"digest": "ab12", "instances": 148, "possibly_incomplete": False, "incomplete_hints": [], "replaces": None},
    "algorithm_version": "0.1.0",
    "measurements": {
        "lung_volume_ml": {"right": 1905.2, "left": 1672.9, "total": 3578.1},
        "opacity_volume_ml": {"right": 150.1, "left": 130.3, "total": 280.4},
        "opacity_percent": {"right": 7.88, "left": 7.79, "total": 7.84},
        "high_opacity_percent": {"right": 0.5, "left": 0.4, "total": 0.45},
    },
    "classification": {
        "model_name": "dicom-node-opacity-baseline",
        "model_version": "1",
        "baseline": True,
        "class_names": ["non-COVID", "COVID-19"],
        "scores": [0.2, 0.8],
        "score_kind": "baseline index, not a probability",
    },
    "pattern": {
        "bilateral": True, "peripheral_percent": 71.0, "zone_distribution_percent": {"upper": 10.0, "middle": 30.0, "lower": 60.0},
        "consolidation_percent": 6.0, "ground_glass_percent": 94.0, "lesion_count": 12, "largest_lesion_ml": 80.0,
        "zone_involvement_percent": {"right upper": 1.0}, "zone_scores": {"right upper": 1}, "zone_based_severity_score": 9,
        "lung_peripheral_percent": 45.0, "rounded_lesion_count": 2, "mass_like_lesion_count": 0, "largest_mass_like_ml": 0.0,
    },
}


def test_a_row_main_stored_reads_as_the_covid19_manifest_with_its_files_in_sending_order() -> None:
    manifest = read_manifest("covid19_ct", MAIN_ROW)

    assert isinstance(manifest, Covid19Manifest) and manifest.pipeline == "covid19_ct"
    assert manifest.dicom_files() == [
        "results/7/seg.dcm", "results/7/sr.dcm", "results/7/summary.dcm", "results/7/sc-001.dcm", "results/7/sc-002.dcm"
    ]
    assert manifest.files.json_file == "results/7/result.json" and manifest.files.masks == "results/7/masks.npz"
    assert manifest.one_line() == "Typical appearance; zone-based score 9/30, PO 7.8%"
    assert [o.name for o in manifest.overlays] == ["right_lung", "left_lung", "opacity"], "the overlays of a row from before they were listed"
    assert manifest.classification is not None and manifest.classification.scores == [0.2, 0.8]


def test_the_json_round_trip_keeps_every_key_the_row_had() -> None:
    manifest = read_manifest("covid19_ct", MAIN_ROW)
    assert manifest is not None

    stored = manifest.to_json()

    assert {key: stored[key] for key in MAIN_ROW} == MAIN_ROW, "the API and the web page read the same keys as before"
    assert Covid19Manifest.from_json(stored) == manifest


def test_rows_from_before_the_headline_and_the_score_rename_still_read() -> None:
    old = copy.deepcopy(MAIN_ROW)
    for key in ("headline", "category", "input", "algorithm_version", "fitness_flags", "pattern", "summary", "secondary_capture"):
        del old[key]
    classification = old["classification"]
    classification["probabilities"] = classification.pop("scores")
    del classification["score_kind"]

    manifest = read_manifest("covid19_ct", old)

    assert isinstance(manifest, Covid19Manifest)
    assert manifest.one_line() == "PO 7.84 %", "jobs done before the headline show their percentage of opacity (as before)"
    assert manifest.classification is not None and manifest.classification.scores == [0.2, 0.8]
    assert manifest.classification.score_kind == "baseline index, not a probability"
    assert manifest.dicom_files() == ["results/7/seg.dcm", "results/7/sr.dcm"]


def test_a_job_without_a_result_has_no_manifest_and_an_unregistered_pipeline_reads_the_common_one() -> None:
    assert read_manifest("covid19_ct", {}) is None and read_manifest("covid19_ct", None) is None

    manifest = read_manifest("retired_pipeline", MAIN_ROW)

    assert type(manifest) is ResultManifest and manifest.dicom_files()[:2] == ["results/7/seg.dcm", "results/7/sr.dcm"]


@pytest.mark.parametrize(
    "change",
    [
        lambda row: row["headline"].pop("text"),
        lambda row: row["fitness_flags"].append({"code": "THICKSLICE"}),
        lambda row: row.update(overlays=[{"name": "x", "array": "a", "rgb": [1, 2, 3], "alpha": 2.0}]),
        lambda row: row["classification"].update(scores="high"),
    ],
)
def test_a_manifest_that_does_not_hold_together_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    broken = copy.deepcopy(MAIN_ROW)
    change(broken)
    with pytest.raises(ValidationError):
        read_manifest("covid19_ct", broken)


def test_the_overlays_have_the_seg_segments_colours() -> None:
    assert [o.rgb for o in OVERLAYS] == [spec.rgb for spec in SEGMENTS]


def test_reading_manifests_loads_neither_numpy_nor_highdicom() -> None:
    """The CLI lists jobs through the manifests; the registry and they stay light."""
    probe = (
        "import sys; from dicom_node.pipelines.registry import read_manifest; import dicom_node.config;"
        "print(sorted(m for m in ('numpy', 'highdicom', 'scipy') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_done_line_says_what_the_worker_logged_before_manifests() -> None:
    manifest = read_manifest("covid19_ct", MAIN_ROW)
    assert manifest is not None and manifest.log_line() == (
        "Typical appearance; zone-based score 9/30, PO 7.8%; lungs 3578.1 mL; fitness flags: none; "
        "baseline index, not a probability non-COVID 0.200, COVID-19 0.800 (dicom-node-opacity-baseline)"
    )
    assert ResultManifest.from_json({"pipeline": "other", **MAIN_ROW}).log_line() == "Typical appearance; zone-based score 9/30, PO 7.8%; fitness flags: none"
