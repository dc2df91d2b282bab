"""The result of one series as a CSV row and a JSON document.

The CSV keeps the shape of Clara's classifier output (an image identifier,
then one probability column per class, in the model's output order; Clara
named the image after the SeriesInstanceUID) and appends the model identity,
the baseline flag and the measurements, so scripts written for Clara's CSV
keep working; the opacity pattern (`pipeline/pattern.py`) follows, one column
per value, the zone-based severity score as `zone_based_severity_score` and
`zone_scores_<lung>_<zone>`.  The JSON carries the same content with structure, plus the
UIDs of the DICOM objects written for the series.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from pydicom.dataset import Dataset

from dicom_node.output import concepts
from dicom_node.output.uids import AlgorithmId
from dicom_node.output.summary import rounded, rounded_measurements
from dicom_node.pipeline.covid19 import Classification, Measurements, OpacityPattern, PipelineResult


def _measurement_columns(measurements: Measurements) -> dict[str, float]:
    return {
        f"{field}_{region}": value
        for field, values in rounded_measurements(measurements).items()
        for region, value in values.items()
    }


def _probabilities(classification: Classification) -> dict[str, float]:
    return {name: rounded(p, "") for name, p in zip(classification.class_names, classification.probabilities)}


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
    """A header and one row: image, one column per class probability, model identity, measurements."""
    classification = result.classification
    row: dict[str, Any] = {"image": result.volume.series_instance_uid}
    row.update(_probabilities(classification))
    row.update(
        model_name=classification.model_name,
        model_version=classification.model_version,
        baseline=classification.baseline,
        algorithm_name=algorithm.name,
        algorithm_version=algorithm.version,
    )
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
        "classification": {
            "model_name": classification.model_name,
            "model_version": classification.model_version,
            "baseline": classification.baseline,
            "note": concepts.BASELINE_NOTE if classification.baseline else "",
            "probabilities": _probabilities(classification),
        },
        "measurements": rounded_measurements(result.measurements),
        "pattern": asdict(result.pattern) if result.pattern else None,
        "dicom": dicom_objects,
        "warnings": warnings or [],
        "input": lineage or {},
        "timings_s": result.timings,
    }
    return json.dumps(document, indent=2) + "\n"
