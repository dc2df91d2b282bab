"""write_results on the real P001 series: the SEG, the SR and the tables, read back and validated."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_node.output.results import ResultFiles, write_results
from dicom_node.output.uids import AlgorithmId
from dicom_node.output.seg import SEGMENTS, segment_masks
from dicom_node.pipelines.covid19.manifest import OVERLAYS
from dicom_node.pipelines.covid19.pipeline import PipelineResult

from .dicom_validation import dciodvfy_errors

ALGORITHM = ("dicom-node-covid19", "0.1.0")


@pytest.fixture(scope="module")
def written(p001_result: PipelineResult, tmp_path_factory: pytest.TempPathFactory) -> ResultFiles:
    first_source = p001_result.volume.source_files[0]
    digest_before = hashlib.sha256(first_source.read_bytes()).hexdigest()
    started = time.perf_counter()
    files = write_results(p001_result, tmp_path_factory.mktemp("p001"), AlgorithmId(*ALGORITHM))
    print(f"\nwrite_results for P001 ({len(p001_result.volume.source_files)} slices): {time.perf_counter() - started:.2f} s")
    assert hashlib.sha256(first_source.read_bytes()).hexdigest() == digest_before, "a source file was modified"
    return files


def source_headers(result: PipelineResult) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in result.volume.source_files if path]


def first_source_header(result: PipelineResult) -> pydicom.Dataset:
    return pydicom.dcmread(result.volume.source_files[0], stop_before_pixels=True)


def test_seg_is_a_new_series_in_the_source_study(written: ResultFiles, p001_result: PipelineResult) -> None:
    seg = pydicom.dcmread(written.seg)
    source = first_source_header(p001_result)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.Modality == "SEG"
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert seg.SeriesInstanceUID.startswith("2.25.")
    assert seg.SegmentationType == "BINARY"


def test_seg_segments_are_coded_and_attributed_to_the_algorithm(written: ResultFiles) -> None:
    seg = hd.seg.segread(written.seg)
    found = {}
    for number in (1, 2, 3):
        description = seg.get_segment_description(number)
        property_type = description.SegmentedPropertyTypeCodeSequence[0]
        modifiers = property_type.get("SegmentedPropertyTypeModifierCodeSequence", [])
        found[number] = (
            description.segment_label,
            (property_type.CodingSchemeDesignator, property_type.CodeValue),
            [(m.CodingSchemeDesignator, m.CodeValue) for m in modifiers],
        )
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algorithm = description.algorithm_identification[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ALGORITHM
    assert found == {
        1: ("Right lung", ("SCT", "39607008"), [("SCT", "24028007")]),
        2: ("Left lung", ("SCT", "39607008"), [("SCT", "7771000")]),
        3: ("Lung opacity", ("DCM", "112001"), []),
    }


def test_seg_frames_reference_the_source_slice_at_their_position(
    written: ResultFiles, p001_result: PipelineResult
) -> None:
    seg = pydicom.dcmread(written.seg)
    positions = {h.SOPInstanceUID: [float(v) for v in h.ImagePositionPatient] for h in source_headers(p001_result)}
    referenced_series = seg.ReferencedSeriesSequence[0]
    assert referenced_series.SeriesInstanceUID == p001_result.volume.series_instance_uid
    assert {item.ReferencedSOPInstanceUID for item in referenced_series.ReferencedInstanceSequence} <= set(positions)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        referenced = frame.DerivationImageSequence[0].SourceImageSequence
        assert len(referenced) == 1
        uid = referenced[0].ReferencedSOPInstanceUID
        assert uid in positions
        frame_position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert frame_position == pytest.approx(positions[uid], abs=1e-3)


def test_seg_mask_reads_back_equal_to_the_mask_written(written: ResultFiles, p001_result: PipelineResult) -> None:
    seg = hd.seg.segread(written.seg)
    uids = list(p001_result.volume.sop_instance_uids)
    read_back = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1, 2, 3], assert_missing_frames_are_empty=True, dtype=bool
    )
    expected = segment_masks(p001_result)
    assert expected[..., 2].any() and expected[..., 0].any() and expected[..., 1].any()
    np.testing.assert_array_equal(read_back, expected)


def test_seg_frames_decoded_with_pydicom_alone_rebuild_the_masks(
    written: ResultFiles, p001_result: PipelineResult
) -> None:
    """Independent of highdicom's reader: unpack each frame and put it back at its source slice."""
    seg = pydicom.dcmread(written.seg)
    z_of = {uid: z for z, uid in enumerate(p001_result.volume.sop_instance_uids)}
    rebuilt = np.zeros(p001_result.volume.hu.shape + (3,), bool)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    for frame, pixels in zip(seg.PerFrameFunctionalGroupsSequence, frames):
        segment = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        rebuilt[z_of[uid], :, :, segment - 1] = pixels.astype(bool)
    np.testing.assert_array_equal(rebuilt, segment_masks(p001_result))


def test_every_object_passes_dciodvfy(written: ResultFiles) -> None:
    assert written.summary is not None and written.secondary_capture, "summary page and key images are on by default"
    for path in written.dicom():
        assert dciodvfy_errors(path) == [], path.name


def test_every_object_has_series_and_content_date_and_a_readable_description(written: ResultFiles) -> None:
    descriptions = {}
    for path in written.dicom():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert len(ds.SeriesDate) == 8 and ds.SeriesDate == ds.ContentDate, path.name
        assert len(ds.SeriesTime) >= 6 and ds.SeriesTime == ds.ContentTime, path.name
        descriptions[ds.Modality, ds.SeriesNumber] = ds.SeriesDescription
    assert descriptions == {
        ("SEG", 9001): "AI lungs and lung opacity (segmentation)",
        ("SR", 9002): "AI lung opacity report (RSNA category, volumes, PO, PHO)",
        ("OT", 9003): "AI key images: lung opacity outlined",
        ("OT", 9004): "AI summary: RSNA category, severity score, lung opacity",
    }


def test_seg_recommends_the_colours_the_key_images_and_the_viewer_use(written: ResultFiles) -> None:
    seg = hd.seg.segread(written.seg)
    for spec, overlay in zip(SEGMENTS, ("right_lung", "left_lung", "opacity")):
        lab = seg.get_segment_description(spec.number).RecommendedDisplayCIELabValue
        assert hd.color.CIELabColor.from_dicom_value(lab).to_rgb() == pytest.approx(spec.rgb, abs=2)
        assert {o.name: o.rgb for o in OVERLAYS}[overlay] == spec.rgb


def test_patient_without_name_stays_without_name(written: ResultFiles, p001_result: PipelineResult) -> None:
    source = first_source_header(p001_result)
    assert "PatientName" not in source, "P001 is expected to lack PatientName"
    for path in (written.seg, written.sr):
        ds = pydicom.dcmread(path)
        assert "PatientName" in ds and str(ds.PatientName) == ""
        assert ds.PatientID == source.PatientID
        assert ds.PatientSex == source.PatientSex
        assert ds.PatientBirthDate == ""
        assert ds.AccessionNumber == ""


def test_sr_reports_measurements_per_segment(written: ResultFiles, p001_result: PipelineResult) -> None:
    sr = hd.sr.srread(written.sr)
    seg = pydicom.dcmread(written.seg)
    source = first_source_header(p001_result)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.SeriesInstanceUID not in (source.SeriesInstanceUID, seg.SeriesInstanceUID)
    measurements = p001_result.measurements
    by_segment = {}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        reference = group.referenced_segment[0]
        assert reference.referenced_sop_instance_uid == seg.SOPInstanceUID
        values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        by_segment[reference.referenced_segment_numbers[0]] = values
    for number, key in ((1, "right"), (2, "left")):
        values = by_segment[number]
        # Clinical precision: mL to 0.1, percentages to 0.01.
        assert values["Volume"] == (round(measurements.lung_volume_ml[key], 1), "mL")
        assert values["Opacity volume"] == (round(measurements.opacity_volume_ml[key], 1), "mL")
        assert values["Percentage of opacity"] == (round(measurements.opacity_percent[key], 2), "%")
        assert values["Percentage of high opacity"] == (round(measurements.high_opacity_percent[key], 2), "%")
    assert by_segment[3]["Volume"] == (round(measurements.opacity_volume_ml["total"], 1), "mL")


def test_sr_reports_totals_and_the_classifier_flagged_as_baseline(
    written: ResultFiles, p001_result: PipelineResult
) -> None:
    sr = hd.sr.srread(written.sr)
    groups = {
        group.tracking_identifier: group for group in sr.content.get_image_measurement_groups()
    }
    totals = {m.name.meaning: m.value for m in groups["Both lungs"].get_measurements()}
    assert totals["Volume"] == round(p001_result.measurements.lung_volume_ml["total"], 1)
    assert totals["Percentage of opacity"] == round(p001_result.measurements.opacity_percent["total"], 2)
    classification = groups["COVID-19 classification"]
    scores = {m.name.meaning: m.value for m in classification.get_measurements()}
    assert scores == {
        "Baseline index for non-COVID (not a probability)": 0.25,
        "Baseline index for COVID-19 (not a probability)": 0.75,
    }
    texts = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
        for item in classification[0].ContentSequence
        if item.ValueType == "TEXT"
    }
    assert texts["Algorithm Name"] == "dicom-node-opacity-baseline"
    assert texts["Algorithm Version"] == "1.0"
    assert texts["Comment"] == (
        "dicom-node-opacity-baseline: explainable baseline, not a trained model: its index is not a probability"
    )


def test_sr_evidence_lists_the_seg_and_every_source_slice(written: ResultFiles, p001_result: PipelineResult) -> None:
    sr = pydicom.dcmread(written.sr)
    seg = pydicom.dcmread(written.seg)
    evidence = {
        instance.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }
    assert evidence == set(p001_result.volume.sop_instance_uids) | {seg.SOPInstanceUID}


def test_tables_hold_measurements_scores_and_baseline_flag(
    written: ResultFiles, p001_result: PipelineResult
) -> None:
    with open(written.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1
    row = rows[0]
    assert list(row)[:3] == ["image", "non-COVID", "COVID-19"]
    assert row["image"] == p001_result.volume.series_instance_uid
    assert (float(row["non-COVID"]), float(row["COVID-19"])) == (0.25, 0.75)
    assert row["baseline"] == "True"
    assert float(row["lung_volume_ml_total"]) == round(p001_result.measurements.lung_volume_ml["total"], 1)
    assert len(row["lung_volume_ml_total"].partition(".")[2]) <= 1, "mL to one decimal"
    assert float(row["high_opacity_percent_left"]) == round(p001_result.measurements.high_opacity_percent["left"], 2)
    document = json.loads(written.json.read_text())
    assert document["classification"]["baseline"] is True
    assert document["classification"]["note"] == "explainable baseline, not a trained model: its index is not a probability"
    assert document["classification"]["score_kind"] == row["score_kind"] == "baseline index, not a probability"
    assert document["classification"]["scores"] == {"non-COVID": 0.25, "COVID-19": 0.75}
    assert document["measurements"]["opacity_percent"] == {k: round(v, 2) for k, v in p001_result.measurements.opacity_percent.items()}
    assert document["measurements"]["lung_volume_ml"] == {k: round(v, 1) for k, v in p001_result.measurements.lung_volume_ml.items()}
    assert document["dicom"]["seg"]["sop_instance_uid"] == pydicom.dcmread(written.seg).SOPInstanceUID
    assert document["dicom"]["sr"]["series_instance_uid"] == pydicom.dcmread(written.sr).SeriesInstanceUID


def test_opacity_pattern_and_zone_based_score_in_sr_csv_and_json(
    written: ResultFiles, p001_result: PipelineResult
) -> None:
    pattern = p001_result.pattern
    assert pattern is not None and pattern.lesion_count == 3  # the three balls of simple_masks
    sr = hd.sr.srread(written.sr)
    groups = {group.tracking_identifier: group for group in sr.content.get_image_measurement_groups()}
    values = {m.name.meaning: m.value for m in groups["Opacity pattern"].get_measurements()}
    assert values["Zone-based CT severity score"] == pattern.zone_based_severity_score
    assert values["Zone-based CT severity score, right lower zone"] == pattern.zone_scores["right lower"]
    assert values["Number of opacity lesions"] == 3
    # The SR's numbers carry clinical precision: percentages to 0.01, mL to 0.1.
    assert values["Opacity share in the outer third of the lungs"] == round(pattern.peripheral_percent, 2)
    assert values["Largest opacity lesion volume"] == round(pattern.largest_lesion_ml, 1)
    evaluations = {e.name.meaning: e.value.meaning for e in groups["Opacity pattern"].get_qualitative_evaluations()}
    assert evaluations == {"Bilateral opacity": "Yes" if pattern.bilateral else "No"}
    with open(written.csv, newline="") as handle:
        row = next(csv.DictReader(handle))
    assert int(row["zone_based_severity_score"]) == pattern.zone_based_severity_score
    assert float(row["zone_distribution_percent_lower"]) == pytest.approx(pattern.zone_distribution_percent["lower"])
    document = json.loads(written.json.read_text())
    assert document["pattern"]["zone_scores"] == pattern.zone_scores
    assert document["pattern"]["bilateral"] is pattern.bilateral


def _sr_groups(path: Path) -> dict[str, hd.sr.MeasurementsAndQualitativeEvaluations]:
    return {group.tracking_identifier: group for group in hd.sr.srread(path).content.get_image_measurement_groups()}


def _comments(group: hd.sr.MeasurementsAndQualitativeEvaluations) -> list[str]:
    return [item.TextValue for item in group[0].ContentSequence if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == "Comment"]


def test_sr_leads_with_the_rsna_category_and_each_criterion_read_back(
    written: ResultFiles, p001_result: PipelineResult
) -> None:
    """Read back with highdicom: the first group is the category, with every criterion met (Yes) or not (No)."""
    assessment, pattern = p001_result.category, p001_result.pattern
    assert assessment is not None and pattern is not None
    sr = hd.sr.srread(written.sr)
    first = sr.content.get_image_measurement_groups()[0]
    assert first.tracking_identifier == "RSNA category"
    evaluations = {e.name.value: e.value for e in first.get_qualitative_evaluations()}
    category = evaluations.pop("RSNACAT")
    assert (category.scheme_designator, category.meaning) == ("99DCMNODE", assessment.category.title)
    assert evaluations.pop("FITVALID").meaning == ("No" if p001_result.fitness else "Yes")
    assert {code: value.meaning for code, value in evaluations.items()} == {
        f"RC{c.code}": "Yes" if c.met else "No" for c in assessment.criteria
    }
    assert len(assessment.criteria) == 9
    values = {m.name.meaning: m.value for m in first.get_measurements()}
    assert values == {
        "Zone-based CT severity score": pattern.zone_based_severity_score,
        "Percentage of opacity": round(p001_result.measurements.opacity_percent["total"], 2),
    }
    comments = _comments(first)
    assert comments[0].startswith(f"{assessment.category.title}: {assessment.rule} (Simpson et al.")
    assert all(f"{c.title}: {'met' if c.met else 'not met'}" in "\n".join(comments) for c in assessment.criteria)
    document = json.loads(written.json.read_text())
    assert document["category"]["category"] == assessment.category.value
    assert [c["met"] for c in document["category"]["criteria"]] == [c.met for c in assessment.criteria]
    assert document["headline"]["zone_based_severity_score"] == pattern.zone_based_severity_score


def test_fitness_flags_mark_the_headline_in_the_sr_and_the_tables(
    phantom_with_gap_result: PipelineResult, tmp_path: Path
) -> None:
    """The phantom has 12.5 mm slices and one interpolated slice: both flags, and every headline marked."""
    flags = phantom_with_gap_result.fitness
    assert {flag.code for flag in flags} >= {"THICKSLICE", "FILLEDSLICES"}
    files = write_results(phantom_with_gap_result, tmp_path, AlgorithmId(*ALGORITHM))
    groups = _sr_groups(files.sr)
    fitness = {e.name.value: e.value.meaning for e in groups["Fitness for the method"].get_qualitative_evaluations()}
    assert fitness == {"FITVALID": "No", **{flag.code: "Yes" for flag in flags}}
    assert [c.split(":")[0] for c in _comments(groups["Fitness for the method"])] == [flag.title for flag in flags]
    assert any(c.startswith("Outside the validated range: ") for c in _comments(groups["RSNA category"]))
    document = json.loads(files.json.read_text())
    assert document["headline"]["marked"] is True and document["headline"]["text"].endswith("(!)")
    assert [flag["code"] for flag in document["fitness_flags"]] == [flag.code for flag in flags]
    with open(files.csv, newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["within_validated_range"] == "0" and row["fitness_flags"] == ";".join(flag.code for flag in flags)


def _uids(files: ResultFiles) -> list[tuple[str, str]]:
    return [(ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in map(pydicom.dcmread, (files.seg, files.sr))]


def _every_uid(path: Path) -> set[tuple[str, str]]:
    """Every UID in a file, nested ones included, with its keyword."""
    found: set[tuple[str, str]] = set()

    def walk(ds: pydicom.Dataset) -> None:
        for element in ds:
            if element.VR == "UI" and element.value:
                found.add((element.keyword, str(element.value)))
            elif element.VR == "SQ":
                for item in element.value:
                    walk(item)

    walk(pydicom.dcmread(path))
    return found


def test_rewriting_reproduces_uids_and_a_new_version_changes_them(
    written: ResultFiles, p001_result: PipelineResult, tmp_path: Path
) -> None:
    again = write_results(p001_result, tmp_path / "again", AlgorithmId(*ALGORITHM))
    assert _uids(again) == _uids(written)
    for first, second in zip(written.dicom(), again.dicom()):  # no UID drawn at random anywhere in them
        assert _every_uid(second) == _every_uid(first), second.name
    newer = write_results(p001_result, tmp_path / "newer", AlgorithmId(ALGORITHM[0], "0.2.0"))
    old_uids = {uid for pair in _uids(written) for uid in pair}
    new_uids = {uid for pair in _uids(newer) for uid in pair}
    assert len(new_uids) == 4 and not old_uids & new_uids
    names = sorted(p.name for p in (tmp_path / "again").iterdir())
    assert names == ["result.csv", "result.json", *[p.name for p in written.secondary_capture], "seg.dcm", "sr.dcm", "summary.dcm"]
