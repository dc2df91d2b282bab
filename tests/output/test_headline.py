"""The headline's words: category first, marked when the scan is outside the validated range; scores named for what they are."""

from __future__ import annotations

import dataclasses

from dicom_node.output.summary import MARK, classification_lines, headline_lines, headline_text
from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipeline.fitness import FitnessFlag
from tests.output.conftest import BASELINE

THICK = FitnessFlag("THICKSLICE", "Slice thickness above the validated range", "slices of 8 mm", 8.0, 3.0, "mm")


def test_the_headline_leads_with_the_category_and_is_marked_only_with_a_flag(p001_result: PipelineResult) -> None:
    assert p001_result.category is not None and p001_result.pattern is not None
    clean = dataclasses.replace(p001_result, fitness=())
    lines = headline_lines(clean)
    assert lines[0] == f"RSNA category: {p001_result.category.category.title}"
    assert lines[1].startswith(f"Zone-based score {p001_result.pattern.zone_based_severity_score}/30, PO ")
    assert not any(MARK in line for line in lines) and lines[-1].startswith("Scan within the validated range")
    assert len([line for line in lines if line.startswith("  [")]) == 9  # every criterion, met [x] or not [ ]
    flagged = dataclasses.replace(p001_result, fitness=(THICK,))
    lines = headline_lines(flagged)
    assert lines[0].endswith(MARK) and lines[1].endswith(MARK) and headline_text(flagged).endswith(MARK)
    assert "  Slice thickness above the validated range (8 mm, limit 3 mm)" in lines


def test_the_baseline_index_is_never_called_a_probability_and_a_trained_model_names_itself() -> None:
    baseline = classification_lines(BASELINE)
    assert baseline[:2] == [
        "Baseline index for non-COVID (not a probability): 0.250",
        "Baseline index for COVID-19 (not a probability): 0.750",
    ]
    assert not any(line.startswith("Probability") for line in baseline)
    trained = dataclasses.replace(BASELINE, model_name="clara_covid19_densenet121", baseline=False)
    assert classification_lines(trained)[:2] == [
        "Probability of non-COVID (clara_covid19_densenet121): 25.0 %",
        "Probability of COVID-19 (clara_covid19_densenet121): 75.0 %",
    ]
    assert trained.score_kind == "probability" and BASELINE.score_kind == "baseline index, not a probability"
