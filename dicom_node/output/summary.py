"""The numbers a reader sees, at clinical precision, and the summary table built from them.

Volumes are rounded to 0.1 mL, percentages to 0.01 % and probabilities to
0.001 wherever the node shows or writes them (SR, CSV, JSON, summary page):
more digits than that are noise of the voxel count, not information.

The summary page's table is a list of `SummaryRow`s built from the result's
data; a descriptor the pipeline adds to its result becomes one more row here
(label, unit and a value per side or one for both lungs), and the page lays
out whatever rows it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicom_node.output import concepts
from dicom_node.output.display import rounded, shown
from dicom_node.pipeline.covid19 import Classification, Measurements, PipelineResult

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


def classification_lines(classification: Classification) -> list[str]:
    """The classifier's answer in words: one line per class, then who answered and, for the baseline, what it is."""
    lines = [
        f"Probability of {name}: {shown(probability, 'probability')}"
        for name, probability in zip(classification.class_names, classification.probabilities)
    ]
    lines.append(f"Classifier: {classification.model_name} {classification.model_version}")
    if classification.baseline:
        lines.append(f"Note: {concepts.BASELINE_NOTE}")
    return lines
