"""The numbers a reader sees, at clinical precision, and the summary table built from them.

Volumes are rounded to 0.1 mL, percentages to 0.01 % and classifier scores to
0.001 wherever the node shows or writes them (SR, CSV, JSON, summary page):
more digits than that are noise of the voxel count, not information.

The headline (`headline_lines`) comes first wherever a result is shown: the RSNA
category, the zone-based CT severity score and PO, and when any fitness flag is raised,
each of these carries `MARK` and the flags follow ("never silently wrong").

The summary page's table is a list of `SummaryRow`s built from the result's
data; a descriptor the pipeline adds to its result becomes one more row here
(label, unit and a value per side or one for both lungs), and the page lays
out whatever rows it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

from dicom_node.output import concepts
from dicom_node.output.display import rounded, shown

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import Classification, Measurements, PipelineResult

MARK = "(!)"  # beside every headline figure of a scan outside the validated range

SIDES = ("right", "left", "total")  # the table's columns: right lung, left lung, both lungs


def rounded_sides(values: dict[str, float], unit: str) -> dict[str, float]:
    return {side: rounded(value, unit) for side, value in values.items()}


# Measurement field -> unit, which sets its precision.
MEASUREMENT_UNITS = {"lung_volume_ml": "mL", "opacity_volume_ml": "mL", "opacity_percent": "%", "high_opacity_percent": "%"}


def rounded_measurements(measurements: Measurements) -> dict[str, dict[str, float]]:
    """The measurements as {field: {side: value}}, each at its clinical precision."""
    return {field: rounded_sides(getattr(measurements, field), unit) for field, unit in MEASUREMENT_UNITS.items()}


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary table: a label, its unit and a value per side ("right", "left", "total")."""

    label: str
    unit: str
    values: dict[str, float | str]

    def cell(self, side: str) -> str:
        value = self.values.get(side)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return shown(value, self.unit)


def summary_rows(result: PipelineResult) -> list[SummaryRow]:
    """The measurements and the opacity pattern of `result` as table rows, in reading order."""
    measurements = result.measurements
    rows = [
        SummaryRow("Lung volume", "mL", rounded_sides(measurements.lung_volume_ml, "mL")),
        SummaryRow("Opacity volume", "mL", rounded_sides(measurements.opacity_volume_ml, "mL")),
        SummaryRow("PO (opacity, % of lung)", "%", rounded_sides(measurements.opacity_percent, "%")),
        SummaryRow("PHO (high opacity, % of lung)", "%", rounded_sides(measurements.high_opacity_percent, "%")),
    ]
    pattern = result.pattern
    if pattern is not None:
        both = "total"
        rows += [
            SummaryRow("Bilateral opacity", "", {both: "yes" if pattern.bilateral else "no"}),
            SummaryRow("Peripheral share of opacity", "%", {both: rounded(pattern.peripheral_percent, "%")}),
            SummaryRow("Consolidation share of opacity", "%", {both: rounded(pattern.consolidation_percent, "%")}),
            SummaryRow("Ground-glass share of opacity", "%", {both: rounded(pattern.ground_glass_percent, "%")}),
            SummaryRow("Lesions", "", {both: str(pattern.lesion_count)}),
            SummaryRow("Largest lesion", "mL", {both: rounded(pattern.largest_lesion_ml, "mL")}),
            *[
                SummaryRow(
                    f"Severity score, {zone} zone (0-5)",
                    "",
                    {side: str(pattern.zone_scores.get(f"{side} {zone}", "")) for side in ("right", "left")},
                )
                for zone in ("upper", "middle", "lower")
            ],
            SummaryRow("Zone-based severity score (0-30)", "", {both: str(pattern.zone_based_severity_score)}),
        ]
    return rows


def marked(text: str, result: PipelineResult) -> str:
    """`text` with the mark when the scan is outside the validated range."""
    return f"{text} {MARK}" if result.fitness else text


def category_text(result: PipelineResult) -> str:
    return result.category.category.title if result.category else "RSNA category not assessed"


def score_text(result: PipelineResult) -> str:
    """The zone-based score (when the pattern was described) and PO."""
    score = f"zone-based score {result.pattern.zone_based_severity_score}/30, " if result.pattern is not None else ""
    return f"{score}PO {rounded(result.measurements.opacity_percent['total'], '%'):.2f}%"


def headline_text(result: PipelineResult) -> str:
    """The headline in one line: category, zone-based score and PO, marked when a fitness flag is raised."""
    return marked(f"{category_text(result)}, {score_text(result)}", result)


def headline_lines(result: PipelineResult) -> list[str]:
    """The headline in two lines (category; score and PO), the category's criteria (met or not), the fitness flags."""
    lines = [marked(f"RSNA category: {category_text(result)}", result), marked(_capitalised(score_text(result)), result)]
    if result.category is not None:
        lines.append(f"  by the rule: {result.category.rule}")
        lines += [f"  [{'x' if c.met else ' '}] {c.title}" for c in result.category.criteria]
    if result.fitness:
        lines.append(f"{MARK} Outside the validated range, figures may be wrong:")
        lines += [
            f"  {flag.title} ({flag.measured:.3g} {_unit(flag.unit)}, limit {flag.limit:g} {_unit(flag.unit)})"
            for flag in result.fitness
        ]
    else:
        lines.append("Scan within the validated range (no fitness flag)")
    return lines


def _unit(ucum: str) -> str:
    return {"[hnsf'U]": "HU", "{slices}": "slices"}.get(ucum, ucum)


def classification_lines(classification: Classification) -> list[str]:
    """The classifier's answer in words: one line per class, then who answered and, for the baseline, what it is."""
    lines = [
        f"{classification.score_label(name)}: {shown(score, classification.score_kind if classification.score_kind == 'probability' else '')}"
        for name, score in zip(classification.class_names, classification.scores)
    ]
    lines.append(f"Classifier: {classification.model_name} {classification.model_version}")
    if classification.baseline:
        lines.append(f"Note: {concepts.BASELINE_NOTE}")
    return lines


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
