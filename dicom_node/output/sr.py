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
Concept choices are documented in `concepts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.output import concepts
from dicom_node.output.seg import LEFT_LUNG, OPACITY, RIGHT_LUNG, SegmentSpec, segment_tracking_uid
from dicom_node.output.series import SR_DESCRIPTION, stamp
from dicom_node.output.sources import SourceImages
from dicom_node.output.summary import rounded
from dicom_node.output.uids import MANUFACTURER, AlgorithmId, derived_uid, device_uid, report_uid
from dicom_node.pipeline.fitness import FitnessFlag

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import Classification, Measurements, OpacityPattern, PipelineResult, RsnaAssessment

SR_SERIES_NUMBER = 9002


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
        _fitness_group(result.fitness, source_series_uid, algorithm),
        _segment_group(RIGHT_LUNG, concepts.RIGHT, _quantification(measurements, "right"), *context),
        _segment_group(LEFT_LUNG, concepts.LEFT, _quantification(measurements, "left"), *context),
        _segment_group(
            OPACITY,
            concepts.RIGHT_AND_LEFT,
            [_volume(concepts.VOLUME, measurements.opacity_volume_ml["total"])],
            *context,
        ),
        _both_lungs_group(measurements, source_series_uid, algorithm),
        *([_pattern_group(result.pattern, source_series_uid, algorithm)] if result.pattern else []),
        _classification_group(result.classification, source_series_uid, algorithm),
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=device_uid(algorithm),
                    name=f"{algorithm.name} {algorithm.version}",
                    manufacturer_name=MANUFACTURER,
                    model_name=algorithm.name,
                ),
            )
        ),
        procedure_reported=concepts.CT_OF_CHEST,
        imaging_measurements=groups,
    )
    report = hd.sr.Comprehensive3DSR(
        evidence=[*sources.headers, segmentation],
        content=report,
        series_instance_uid=derived_uid(source_series_uid, algorithm, "sr", "series", inputs=sources.input_digest),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=report_uid(source_series_uid, algorithm, sources.input_digest),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,  # not verified by a physician: preliminary
        series_description=SR_DESCRIPTION,
        coding_schemes=[concepts.private_coding_scheme()],
        previous_versions=[predecessor] if predecessor is not None else None,
    )
    for note in notes:
        report.ContentSequence.append(
            hd.sr.TextContentItem(name=concepts.COMMENT, value=note, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        )
    return stamp(report, created)


def _tracking(source_series_uid: str, algorithm: AlgorithmId, name: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=derived_uid(source_series_uid, algorithm, "sr", "group", name), identifier=name)


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


def _segment_reference(segmentation: Dataset, spec: SegmentSpec, source_series_uid: str) -> hd.sr.ReferencedSegment:
    return hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID,
        sop_instance_uid=segmentation.SOPInstanceUID,
        segment_number=spec.number,
        source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid),
    )


def _segment_group(
    spec: SegmentSpec,
    laterality: Code,
    measurements: list[hd.sr.Measurement],
    segmentation: Dataset,
    source_series_uid: str,
    algorithm: AlgorithmId,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """Measurements of one SEG segment, tracked with the segment's own Tracking UID."""
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=segment_tracking_uid(source_series_uid, algorithm, spec), identifier=spec.label
        ),
        referenced_segment=_segment_reference(segmentation, spec, source_series_uid),
        finding_type=spec.property_type,
        finding_sites=[hd.sr.FindingSite(concepts.LUNG, laterality=laterality)],
        measurements=measurements,
    )


def _both_lungs_group(
    measurements: Measurements, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(source_series_uid, algorithm, "Both lungs"),
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
        tracking_identifier=_tracking(source_series_uid, algorithm, "Opacity pattern"),
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


def _comment(group: hd.sr.MeasurementsAndQualitativeEvaluations, text: str) -> None:
    group[0].ContentSequence.append(
        hd.sr.TextContentItem(name=concepts.COMMENT, value=text[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    )


def _yes_no(name: Code, value: bool) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(name=name, value=concepts.YES if value else concepts.NO)


def _category_group(
    result: PipelineResult, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The headline: category, criteria, zone-based score and PO, and whether the scan is fit for the method."""
    from dicom_node.pipelines.covid19.category import SOURCE  # when a COVID-19 result is written (its package imports this one)

    assessment: RsnaAssessment = result.category  # type: ignore[assignment]
    pattern: OpacityPattern = result.pattern  # type: ignore[assignment]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(source_series_uid, algorithm, "RSNA category"),
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
            *(_yes_no(concepts.criterion(c.code, c.title), c.met) for c in assessment.criteria),
            _yes_no(concepts.WITHIN_VALIDATED_RANGE, not result.fitness),
        ],
    )
    _comment(group, f"{assessment.category.title}: {assessment.rule} ({SOURCE})")
    for c in assessment.criteria:
        _comment(group, f"{c.title}: {'met' if c.met else 'not met'}, {c.detail}")
    if result.fitness:
        _comment(group, "Outside the validated range: " + "; ".join(flag.title for flag in result.fitness))
    return group


def _fitness_group(
    flags: tuple[FitnessFlag, ...], source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(source_series_uid, algorithm, "Fitness for the method"),
        finding_type=concepts.FITNESS,
        qualitative_evaluations=[
            _yes_no(concepts.WITHIN_VALIDATED_RANGE, not flags),
            *(_yes_no(concepts.fitness_flag(flag.code, flag.title), True) for flag in flags),
        ],
    )
    for flag in flags:
        _comment(group, f"{flag.title}: {flag.reason}")
    return group


def _classification_group(
    classification: Classification, source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if len(classification.class_names) != len(classification.scores):
        raise ValueError(f"{len(classification.scores)} scores for classes {classification.class_names}")
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(source_series_uid, algorithm, "COVID-19 classification"),
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
        _comment(group, f"{classification.model_name}: {concepts.BASELINE_NOTE}")
    return group
