"""The measurements and the classification as a TID 1500 Measurement Report (Comprehensive 3D SR).

Measurement groups, the headline first:
- the RSNA reporting category (TID 1501), when the result has one: the category
  (typical, indeterminate, atypical, negative for pneumonia) and each criterion
  met (Yes) or not (No) as qualitative evaluations, the rule that decided and each
  criterion's figures as comments, the zone-based CT severity score and PO, and
  whether the scan is within the method's validated range;
- the fitness of the scan (TID 1501): within the validated range (Yes/No) and, per
  fitness flag raised, the flag (Yes) with its reason as a comment;
- one per lung (TID 1411), referencing its SEG segment: lung volume, opacity
  volume inside that lung, PO and PHO;
- one for the opacity segment (TID 1411): total opacity volume;
- one for both lungs together (TID 1501): total lung and opacity volume, PO, PHO;
- one for the opacity pattern (TID 1501), when the result has one: bilateral
  (yes/no), peripheral, zone and consolidation/ground-glass shares, lesion count,
  largest lesion volume and the zone-based CT severity score with its six zones;
- one for the classifier (TID 1501): one score per class (a trained model's
  "Probability of <class>"; for the explainable baseline "Baseline index for
  <class> (not a probability)"), the model's name and version, and, for the
  baseline, a comment that says in plain words that it is not a trained model.
Concept choices are documented in `concepts`; the report's frame and the groups every pipeline writes alike (segment,
fitness, tracking, comments) are `output/report.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from dicom_node.output import concepts
from dicom_node.output.report import comment, fitness_group, measurement_report, segment_group, tracking, yes_no
from dicom_node.output.seg import LEFT_LUNG, OPACITY, RIGHT_LUNG
from dicom_node.output.sources import SourceImages
from dicom_node.output.summary import rounded
from dicom_node.output.uids import AlgorithmId

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import Classification, Measurements, OpacityPattern, PipelineResult, RsnaAssessment


def build_report(
    result: PipelineResult,
    segmentation: Dataset,
    sources: SourceImages,
    algorithm: AlgorithmId,
    created: datetime,
    notes: Sequence[str] = (),
    predecessor: Dataset | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The SR for `result`, referencing the segments of `segmentation` (the SEG built for the same result).

    `notes` (the input may be incomplete, the result it replaces) become comments of the report; `predecessor` is
    the SR of the result this one replaces, named in the Predecessor Documents Sequence."""
    source_series_uid = result.volume.series_instance_uid
    measurements = result.measurements
    context = (segmentation, source_series_uid, algorithm)
    headline = [_category_group(result, source_series_uid, algorithm)] if result.category and result.pattern else []
    groups = [
        *headline,
        fitness_group(result.fitness, source_series_uid, algorithm),
        segment_group(RIGHT_LUNG, concepts.RIGHT, _quantification(measurements, "right"), *context),
        segment_group(LEFT_LUNG, concepts.LEFT, _quantification(measurements, "left"), *context),
        segment_group(
            OPACITY,
            concepts.RIGHT_AND_LEFT,
            [_volume(concepts.VOLUME, measurements.opacity_volume_ml["total"])],
            *context,
        ),
        _both_lungs_group(measurements, source_series_uid, algorithm),
        *([_pattern_group(result.pattern, source_series_uid, algorithm)] if result.pattern else []),
        _classification_group(result.classification, source_series_uid, algorithm),
    ]
    return measurement_report(source_series_uid, groups, segmentation, sources, algorithm, created, notes, predecessor)


def _volume(name: Code, value_ml: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=name, value=rounded(value_ml, "mL"), unit=concepts.MILLILITER, method=concepts.SUM_OF_SEGMENTED_VOXELS
    )


def _percent(name: Code, value: float) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=rounded(value, "%"), unit=concepts.PERCENT)


def _quantification(measurements: Measurements, key: str) -> list[hd.sr.Measurement]:
    """Lung volume, opacity volume, PO and PHO for one lung ("right", "left") or both ("total")."""
    return [
        _volume(concepts.VOLUME, measurements.lung_volume_ml[key]),
        _volume(concepts.OPACITY_VOLUME, measurements.opacity_volume_ml[key]),
        _percent(concepts.PERCENT_OPACITY, measurements.opacity_percent[key]),
        _percent(concepts.PERCENT_HIGH_OPACITY, measurements.high_opacity_percent[key]),
    ]


def _both_lungs_group(
    measurements: Measurements, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(source_series_uid, algorithm, "Both lungs"),
        finding_type=concepts.LUNG,
        finding_sites=[hd.sr.FindingSite(concepts.LUNG, laterality=concepts.RIGHT_AND_LEFT)],
        measurements=_quantification(measurements, "total"),
    )


def _pattern_group(
    pattern: OpacityPattern, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    shares = [
        (concepts.PERIPHERAL_SHARE, pattern.peripheral_percent),
        *((concepts.ZONE_SHARE[zone], share) for zone, share in pattern.zone_distribution_percent.items()),
        (concepts.CONSOLIDATION_SHARE, pattern.consolidation_percent),
        (concepts.GROUND_GLASS_SHARE, pattern.ground_glass_percent),
    ]
    scores = [
        (concepts.ZONE_BASED_SEVERITY_SCORE, pattern.zone_based_severity_score),
        *((concepts.zone_severity_score(key), score) for key, score in pattern.zone_scores.items()),
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(source_series_uid, algorithm, "Opacity pattern"),
        finding_type=concepts.OPACITY_PATTERN,
        finding_sites=[hd.sr.FindingSite(concepts.LUNG, laterality=concepts.RIGHT_AND_LEFT)],
        measurements=[
            *(_percent(name, value) for name, value in shares),
            hd.sr.Measurement(name=concepts.LESION_COUNT, value=pattern.lesion_count, unit=concepts.NO_UNITS),
            _volume(concepts.LARGEST_LESION_VOLUME, pattern.largest_lesion_ml),
            *(hd.sr.Measurement(name=name, value=score, unit=concepts.NO_UNITS) for name, score in scores),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=concepts.BILATERAL_OPACITY, value=concepts.YES if pattern.bilateral else concepts.NO
            )
        ],
    )


def _category_group(
    result: PipelineResult, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The headline: category, criteria, zone-based score and PO, and whether the scan is fit for the method."""
    from dicom_node.pipelines.covid19.category import SOURCE  # when a COVID-19 result is written (its package imports this one)

    assessment: RsnaAssessment = result.category  # type: ignore[assignment]
    pattern: OpacityPattern = result.pattern  # type: ignore[assignment]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(source_series_uid, algorithm, "RSNA category"),
        finding_type=concepts.COVID_19,
        finding_sites=[hd.sr.FindingSite(concepts.LUNG, laterality=concepts.RIGHT_AND_LEFT)],
        measurements=[
            hd.sr.Measurement(
                name=concepts.ZONE_BASED_SEVERITY_SCORE, value=pattern.zone_based_severity_score, unit=concepts.NO_UNITS
            ),
            _percent(concepts.PERCENT_OPACITY, result.measurements.opacity_percent["total"]),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=concepts.RSNA_CATEGORY, value=concepts.RSNA_CATEGORY_VALUES[assessment.category.value]
            ),
            *(yes_no(concepts.criterion(c.code, c.title), c.met) for c in assessment.criteria),
            yes_no(concepts.WITHIN_VALIDATED_RANGE, not result.fitness),
        ],
    )
    comment(group, f"{assessment.category.title}: {assessment.rule} ({SOURCE})")
    for c in assessment.criteria:
        comment(group, f"{c.title}: {'met' if c.met else 'not met'}, {c.detail}")
    if result.fitness:
        comment(group, "Outside the validated range: " + "; ".join(flag.title for flag in result.fitness))
    return group


def _classification_group(
    classification: Classification, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if len(classification.class_names) != len(classification.scores):
        raise ValueError(f"{len(classification.scores)} scores for classes {classification.class_names}")
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(source_series_uid, algorithm, "COVID-19 classification"),
        finding_type=concepts.COVID_19,
        algorithm_id=hd.sr.AlgorithmIdentification(
            name=classification.model_name, version=classification.model_version
        ),
        measurements=[
            hd.sr.Measurement(
                name=concepts.score_of(name, index, classification.baseline), value=rounded(score, ""), unit=concepts.NO_UNITS
            )
            for index, (name, score) in enumerate(zip(classification.class_names, classification.scores))
        ],
    )
    if classification.baseline:
        comment(group, f"{classification.model_name}: {concepts.BASELINE_NOTE}")
    return group
