"""What the lung-density pipeline writes, through the registry as the worker writes it: valid DICOM objects with the
figures and their codes, a manifest that round-trips, masks for the viewer, and the default AE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_node.config import Config
from dicom_node.output.inputs import JobInput
from dicom_node.pipelines.lung_density.manifest import LungDensityManifest
from dicom_node.pipelines.protocol import ResultTarget
from dicom_node.pipelines.registry import pipeline, read_manifest
from tests.lung_density.conftest import Case
from tests.output.dicom_validation import dciodvfy_errors


@pytest.fixture(scope="module")
def written(sharp: Case, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LungDensityManifest]:
    """The sharp phantom's result written as the worker writes it: the registry's pipeline, a job's result folder."""
    data_dir = tmp_path_factory.mktemp("data")
    manifest = pipeline("lung_density").write(sharp.result, ResultTarget(data_dir / "results" / "1", data_dir, JobInput()))
    return data_dir, manifest  # type: ignore[return-value]


def test_a_series_sent_to_lungdensity_gets_a_lung_density_job_by_default():
    called = {ae.ae_title: ae.pipelines for ae in Config().dicom.called_aes}
    assert called["LUNGDENSITY"] == ["lung_density"]
    assert "lung_density" not in called["CLARA"]


def test_the_manifest_lists_its_files_round_trips_and_reads_back_by_the_jobs_pipeline(written):
    data_dir, manifest = written
    assert [Path(name).name for name in manifest.dicom_files()] == ["seg.dcm", "sr.dcm", "summary.dcm", "sc-001.dcm"]
    assert all((data_dir / name).is_file() for name in [*manifest.dicom_files(), manifest.files.csv, manifest.files.json_file])
    assert read_manifest("lung_density", manifest.to_json()) == manifest
    assert LungDensityManifest.model_validate_json((data_dir / manifest.files.json_file).read_text()) == manifest
    assert manifest.headline.marked and "(!) not fit for densitometry" in manifest.one_line()
    assert not manifest.fit and "QIBAKERNEL" in {flag.code for flag in manifest.fitness_flags}
    assert manifest.density.lungs["total"].ra950_percent == manifest.headline.ra950_percent


def test_the_viewer_masks_hold_every_overlay_array(written):
    data_dir, manifest = written
    with np.load(data_dir / manifest.files.masks) as masks:
        assert {overlay.array for overlay in manifest.overlays} <= set(masks.files)
        assert int(masks["low_attenuation"].sum()) > 0 and set(np.unique(masks["lung_labels"])) == {0, 1, 2}


def test_every_dicom_object_is_valid_in_the_pipelines_own_series_numbers(written):
    data_dir, manifest = written
    for name in manifest.dicom_files():
        assert dciodvfy_errors(data_dir / name) == [], name
    numbers = [pydicom.dcmread(data_dir / name, stop_before_pixels=True).SeriesNumber for name in manifest.dicom_files()]
    assert numbers == [9011, 9012, 9014, 9013], "SEG, SR, summary page, key image: beside COVID-19's 9001-9004"


def test_the_seg_holds_the_lungs_and_the_low_attenuation_voxels(written):
    data_dir, manifest = written
    seg = pydicom.dcmread(data_dir / manifest.files.seg)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Right lung", "Left lung", "Lung below -950 HU"]
    low = seg.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0]
    assert (low.CodeValue, low.CodingSchemeDesignator) == ("LAA950", "99DCMNODE")


def _codes(dataset: pydicom.Dataset) -> set[tuple[str, str]]:
    found = set()
    for item in dataset.get("ContentSequence", []):
        for concept in (*item.get("ConceptNameCodeSequence", []), *item.get("ConceptCodeSequence", [])):
            found.add((concept.CodeValue, concept.CodingSchemeDesignator))
        found |= _codes(item)
    return found


def test_the_sr_reports_the_figures_with_standard_codes_where_they_exist(written):
    data_dir, manifest = written
    sr = pydicom.dcmread(data_dir / manifest.files.sr)
    codes = _codes(sr)
    standard = {("87433001", "SCT"), ("281392002", "SCT"), ("281393007", "SCT"), ("281394001", "SCT"), ("112181", "DCM"), ("118565006", "SCT")}
    assert standard <= codes
    assert {("RA950", "99DCMNODE"), ("PERC15", "99DCMNODE"), ("QIBAKERNEL", "99DCMNODE")} <= codes
    ra950 = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for item in _numeric_items(sr)
        if item.ConceptNameCodeSequence[0].CodeValue == "RA950"
    ]
    assert manifest.density.lungs["total"].ra950_percent in ra950


def _numeric_items(dataset: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in dataset.get("ContentSequence", []):
        if item.get("ValueType") == "NUM":
            items.append(item)
        items += _numeric_items(item)
    return items
