"""The result of one series as a CSV row and a JSON document.

The CSV keeps the shape of Clara's classifier output (an image identifier,
then one score column per class, in the model's output order; Clara named the
image after the SeriesInstanceUID), so scripts written for Clara's CSV keep
working, and appends the model identity, the baseline flag, what the scores are
(`score_kind`: "probability" for a trained model; the baseline's index is not a
probability), the headline (`rsna_category`, `rsna_<criterion>` 1/0 per criterion,
`within_validated_range`, `fitness_flags`: the codes joined by ";"), the
measurements and the opacity pattern (`pipelines/covid19/pattern.py`), one column per value
(the zone-based severity score as `zone_based_severity_score` and
`zone_scores_<lung>_<zone>`). The JSON carries the same content with structure,
plus the UIDs of the DICOM objects written for the series; it leads with
`headline` (category, zone-based score, PO, `marked` when a fitness flag is
raised), then `category` (rule, source, each criterion) and `fitness_flags`
(code, title, reason, measured value, limit, unit).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from dicom_node.output import concepts
from dicom_node.output.uids import AlgorithmId
from dicom_node.output.summary import headline_text, rounded, rounded_measurements

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import Classification, Measurements, OpacityPattern, PipelineResult


def _measurement_columns(measurements: Measurements) -> dict[str, float]:
    return {
        f"{field}_{region}": value
        for field, values in rounded_measurements(measurements).items()
        for region, value in values.items()
    }


def _scores(classification: Classification) -> dict[str, float]:
    return {name: rounded(p, "") for name, p in zip(classification.class_names, classification.scores)}


def headline(result: PipelineResult) -> dict[str, Any]:
    """The headline as the JSON document and the job row keep it (`web`, `cli` read it by these keys)."""
    return {
        "category": result.category.category.value if result.category else None,
        "category_title": result.category.category.title if result.category else None,
        "zone_based_severity_score": result.pattern.zone_based_severity_score if result.pattern else None,
        "opacity_percent": rounded(result.measurements.opacity_percent["total"], "%"),
        "marked": bool(result.fitness),
        "text": headline_text(result),
    }


def _headline_columns(result: PipelineResult) -> dict[str, Any]:
    columns: dict[str, Any] = {"rsna_category": result.category.category.value if result.category else ""}
    if result.category is not None:
        columns.update({f"rsna_{c.code.lower()}": int(c.met) for c in result.category.criteria})
    columns["within_validated_range"] = int(not result.fitness)
    columns["fitness_flags"] = ";".join(flag.code for flag in result.fitness)
    return columns


def _pattern_columns(pattern: OpacityPattern | None) -> dict[str, Any]:
    """Flat columns of the opacity pattern; dictionaries become one column per key ("right upper" -> right_upper)."""
    if pattern is None:
        return {}
    columns: dict[str, Any] = {}
    for name, value in asdict(pattern).items():
        if isinstance(value, dict):
            columns.update({f"{name}_{key.replace(' ', '_')}": item for key, item in value.items()})
        else:
            columns[name] = value
    return columns


def csv_text(result: PipelineResult, algorithm: AlgorithmId) -> str:
    """A header and one row: image, one column per class score, model identity, headline, measurements, pattern."""
    classification = result.classification
    row: dict[str, Any] = {"image": result.volume.series_instance_uid}
    row.update(_scores(classification))
    row.update(
        model_name=classification.model_name,
        model_version=classification.model_version,
        baseline=classification.baseline,
        score_kind=classification.score_kind,
        algorithm_name=algorithm.name,
        algorithm_version=algorithm.version,
    )
    row.update(_headline_columns(result))
    row.update(_measurement_columns(result.measurements))
    row.update(_pattern_columns(result.pattern))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return buffer.getvalue()


def json_text(
    result: PipelineResult,
    algorithm: AlgorithmId,
    source_header: Dataset,
    dicom_objects: dict[str, Any],
    warnings: list[str] | None = None,
    lineage: dict[str, Any] | None = None,
) -> str:
    """The JSON result document; `dicom_objects` lists the UIDs of the DICOM objects written, `warnings`
    what was wrong with the source, `lineage` the input's digest, completeness and the result it replaces."""
    classification = result.classification
    document = {
        "source": {
            "study_instance_uid": result.volume.study_instance_uid,
            "series_instance_uid": result.volume.series_instance_uid,
            "patient_id": str(source_header.get("PatientID", "")),
            "number_of_slices": len(result.volume.sop_instance_uids),
        },
        "algorithm": {"name": algorithm.name, "version": algorithm.version},
        "headline": headline(result),
        "category": result.category.as_dict() if result.category else None,
        "fitness_flags": [flag.as_dict() for flag in result.fitness],
        "classification": {
            "model_name": classification.model_name,
            "model_version": classification.model_version,
            "baseline": classification.baseline,
            "note": concepts.BASELINE_NOTE if classification.baseline else "",
            "score_kind": classification.score_kind,
            "scores": _scores(classification),
        },
        "measurements": rounded_measurements(result.measurements),
        "pattern": asdict(result.pattern) if result.pattern else None,
        "dicom": dicom_objects,
        "warnings": warnings or [],
        "input": lineage or {},
        "timings_s": result.timings,
    }
    return json.dumps(document, indent=2) + "\n"
