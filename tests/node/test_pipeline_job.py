"""The pipeline issue end to end: P001 sent with storescu to the node started through its CLI ends as a done job
with its results on disk; a series the pipeline is not meant for ends skipped with the reason."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from dicom_node.output.display import shown
from tests.dcmtk import storescu
from tests.dicom_files import copy_with_new_uid
from tests.node.index import query, wait_for_finished_job
from tests.processed_node import ProcessedSeries

PIPELINE_STEPS = {"check_models", "input_digest", "fitness", "load", "segment", "classifier_input", "classify", "quantify", "describe", "to_native", "write_results"}
RESULT_FILES = {"seg": "seg.dcm", "sr": "sr.dcm", "csv": "result.csv", "json": "result.json", "masks": "masks.npz"}


@pytest.fixture(scope="module")
def job(processed_p001: ProcessedSeries) -> dict:
    """The job as `dicom-node jobs show` prints it."""
    assert processed_p001.state == "done", f"{processed_p001.state}: {processed_p001.reason}\n{processed_p001.node.log()[-5000:]}"
    shown = processed_p001.node.cli("jobs", "show", str(processed_p001.job_id), "--json")
    return json.loads(shown.stdout)


def result_dir(processed: ProcessedSeries) -> Path:
    return processed.node.data_dir / "results" / str(processed.job_id)


def test_job_is_done_with_its_step_times(processed_p001: ProcessedSeries, job: dict) -> None:
    assert (job["state"], job["reason"], job["instances"]) == ("done", "", 148)
    assert (job["series_instance_uid"], job["study_instance_uid"]) == (processed_p001.series_instance_uid, processed_p001.study_instance_uid)
    assert set(job["steps"]) == PIPELINE_STEPS
    assert all(seconds >= 0 for seconds in job["steps"].values())
    assert 0 < sum(job["steps"].values()) < 300
    # The index row says the same as the CLI.
    ((steps, state),) = query(processed_p001.node.data_dir, "SELECT steps, state FROM job WHERE id = ?", processed_p001.job_id)
    assert state == "done" and json.loads(steps) == job["steps"]


def test_the_done_line_gives_the_jobs_time_not_the_sum_of_its_overlapping_steps(processed_p001: ProcessedSeries, job: dict) -> None:
    """The classifier runs in a second thread beside the quantification: its steps overlap, their sum overstates the job."""
    (line,) = [line for line in processed_p001.node.log().splitlines() if f"job {processed_p001.job_id} (" in line and " done in " in line]
    logged = float(re.search(r" done in ([0-9.]+) s", line).group(1))
    ((started, finished),) = query(processed_p001.node.data_dir, "SELECT started_at, finished_at FROM job WHERE id = ?", processed_p001.job_id)
    wall = (datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))).total_seconds()

    assert max(job["steps"].values()) <= logged + 0.05
    assert logged <= wall + 0.05
    # The log writes the measurements as the page, the CLI and the summary page do (output/display.py).
    measurements = job["result"]["measurements"]
    assert f"lungs {shown(measurements['lung_volume_ml']['total'], 'mL')}" in line, line


def test_result_files_are_in_the_jobs_results_folder(processed_p001: ProcessedSeries, job: dict) -> None:
    folder = result_dir(processed_p001)
    assert job["result"]["files"] == {kind: f"results/{processed_p001.job_id}/{name}" for kind, name in RESULT_FILES.items()}
    for name in RESULT_FILES.values():
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name


def test_seg_references_the_sent_series_and_study(processed_p001: ProcessedSeries) -> None:
    folder = result_dir(processed_p001)
    source_uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in processed_p001.source.glob("*.dcm")}
    seg = hd.seg.segread(folder / "seg.dcm")
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == processed_p001.study_instance_uid
    assert seg.SeriesInstanceUID != processed_p001.series_instance_uid
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == processed_p001.series_instance_uid
    sources = seg.get_source_image_uids()
    assert {(study, series) for study, series, _ in sources} == {(processed_p001.study_instance_uid, processed_p001.series_instance_uid)}
    assert {sop for _, _, sop in sources} <= source_uids
    assert [seg.get_segment_description(n).segment_label for n in (1, 2, 3)] == ["Right lung", "Left lung", "Lung opacity"]
    sr = hd.sr.srread(folder / "sr.dcm")
    assert sr.StudyInstanceUID == processed_p001.study_instance_uid


def test_json_csv_and_cli_carry_the_headline_the_scores_and_the_baseline_flag(processed_p001: ProcessedSeries, job: dict) -> None:
    headline = job["result"]["headline"]
    assert headline["category"] == "typical" and job["result"]["category"]["criteria"][0]["code"] == "OPACITY"
    assert headline["marked"] == bool(job["result"]["fitness_flags"])
    classification = job["result"]["classification"]
    assert classification["baseline"] is True and classification["class_names"] == ["non-COVID", "COVID-19"]
    assert classification["score_kind"] == "baseline index, not a probability"
    scores = classification["scores"]
    assert sum(scores) == pytest.approx(1, abs=1e-5) and all(0 <= p <= 1 for p in scores)
    assert job["result"]["measurements"]["lung_volume_ml"]["total"] > 2000  # an adult's two lungs

    folder = result_dir(processed_p001)
    document = json.loads((folder / "result.json").read_text())
    assert document["source"]["series_instance_uid"] == processed_p001.series_instance_uid
    assert document["classification"]["baseline"] is True and document["classification"]["note"]
    assert document["headline"] == headline and document["category"] == job["result"]["category"]
    # The result files carry clinical precision (scores to 0.001), the job row the same measurements.
    assert document["classification"]["scores"] == pytest.approx(dict(zip(classification["class_names"], scores)), abs=5e-4)
    assert document["measurements"]["opacity_percent"] == job["result"]["measurements"]["opacity_percent"]

    (row,) = csv.DictReader((folder / "result.csv").open())
    assert row["image"] == processed_p001.series_instance_uid
    assert [float(row["non-COVID"]), float(row["COVID-19"])] == pytest.approx(scores, abs=5e-4)
    assert row["baseline"] == "True"
    assert float(row["lung_volume_ml_total"]) == job["result"]["measurements"]["lung_volume_ml"]["total"]


def test_masks_lie_on_the_ct_grid_with_the_right_lung_on_the_patients_right(processed_p001: ProcessedSeries) -> None:
    with np.load(result_dir(processed_p001) / "masks.npz") as masks:
        labels, opacity = masks["lung_labels"], masks["opacity_mask"]
    assert labels.shape == opacity.shape == (148, 512, 512)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert not (opacity & (labels == 0)).any()
    # P001's rows run towards the patient's left (+x in LPS): the right lung has the smaller column indices.
    columns = np.nonzero(labels)[2]
    right, left = columns[labels[np.nonzero(labels)] == 1].mean(), columns[labels[np.nonzero(labels)] == 2].mean()
    assert right < 256 < left


def derived_series(source: Path, target: Path, count: int, **changes: object) -> str:
    """`count` of P001's slices as a new series of a study and patient of their own; returns its UID.

    Not in P001's study or patient: the session's node is shared, and the OHIF and QIDO tests expect them as the
    node made them.
    """
    target.mkdir()
    series_uid, study_uid = generate_uid(), generate_uid()
    identity = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid, "PatientID": f"DERIVED-{study_uid[-8:]}"}
    for path in sorted(source.glob("*.dcm"))[:count]:
        copy_with_new_uid(path, target / path.name, **identity, **changes)
    return series_uid


def test_series_the_pipeline_is_not_for_end_skipped_with_the_reason(processed_p001: ProcessedSeries, tmp_path: Path) -> None:
    few = derived_series(processed_p001.source, tmp_path / "few", 5)
    scout = derived_series(processed_p001.source, tmp_path / "scout", 1, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    for folder in (tmp_path / "few", tmp_path / "scout"):
        sent = storescu(processed_p001.node.port, folder)
        assert sent.returncode == 0, sent.stderr
    data_dir = processed_p001.node.data_dir
    assert wait_for_finished_job(data_dir, few)[1:] == ("skipped", "too few slices: 5 (at least 20 needed)")
    job_id, state, reason = wait_for_finished_job(data_dir, scout)
    assert (state, reason) == ("skipped", "localizer (scout) series: ImageType contains LOCALIZER")
    shown = json.loads(processed_p001.node.cli("jobs", "show", str(job_id), "--json").stdout)
    assert (shown["state"], shown["reason"]) == ("skipped", reason) and not shown["result"]
    assert not (data_dir / "results" / str(job_id)).exists()


def test_broken_headers_fail_the_job_with_the_attribute_named(processed_p001: ProcessedSeries, tmp_path: Path) -> None:
    """PixelSpacing 8 mm with 30 mm gaps (once 54 s and 4.3 GB) and a series spread over two studies (once a raw
    highdicom ValueError after the whole pipeline) fail at once, with a reason `dicom-node jobs show` prints."""
    from phantoms.chest import make_phantom, write_phantom_series

    phantom = make_phantom((128, 128, 34), seed=4)
    wide = write_phantom_series(phantom, tmp_path / "wide")
    for k, path in enumerate(wide):
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = ["8", "8"]
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], f"{30.0 * k:.1f}"]
        ds.save_as(path)
    split = write_phantom_series(phantom, tmp_path / "split")
    for path in split[::2]:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = generate_uid()
        ds.save_as(path)
    for folder in (tmp_path / "wide", tmp_path / "split"):
        assert storescu(processed_p001.node.port, folder).returncode == 0
    data_dir = processed_p001.node.data_dir
    for files, expected in (
        (wide, "field of view of 1024 x 1024 mm (Columns 128 x Rows 128 at PixelSpacing (0028,0030) 8\\8 mm) is larger than 700 mm"),
        (split, "different StudyInstanceUID (0020,000D) values"),
    ):
        job_id, state, reason = wait_for_finished_job(data_dir, str(pydicom.dcmread(files[1]).SeriesInstanceUID))
        shown = json.loads(processed_p001.node.cli("jobs", "show", str(job_id), "--json").stdout)
        assert (shown["state"], state) == ("failed", "failed") and expected in shown["reason"] == reason
