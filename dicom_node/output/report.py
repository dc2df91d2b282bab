"""The frame of every pipeline's TID 1500 Measurement Report (Comprehensive 3D SR), and the groups any pipeline uses.

`measurement_report` wraps a pipeline's measurement groups: the node as device observer, the chest CT procedure,
the source images and the SEG as evidence, UIDs derived from the source series, the algorithm and the input digest
(`uids.report_uid`: the worker compares it with an earlier result's), the private coding scheme declared, notes as
comments and the SR it replaces as predecessor. The groups every pipeline writes alike: a SEG segment's
measurements (`segment_group`, tracked with the segment's own Tracking UID), the fitness of the scan
(`fitness_group`, TID 1501: within the validated range and one entry per flag with its reason), tracking
identifiers, comments and yes/no evaluations. Concept choices are in `concepts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.output import concepts
from dicom_node.output.seg import SegmentSpec, segment_tracking_uid
from dicom_node.output.series import SR_DESCRIPTION, stamp
from dicom_node.output.sources import SourceImages
from dicom_node.output.uids import MANUFACTURER, AlgorithmId, ResultSeries, derived_uid, device_uid, report_uid
from dicom_node.pipeline.fitness import FitnessFlag


def measurement_report(
    source_series_uid: str,
    groups: Sequence[hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations],
    segmentation: Dataset,
    sources: SourceImages,
    algorithm: AlgorithmId,
    created: datetime,
    notes: Sequence[str] = (),
    predecessor: Dataset | None = None,
    series_description: str = SR_DESCRIPTION,
) -> hd.sr.Comprehensive3DSR:
    """Any pipeline's measurement `groups` as the TID 1500 report of a chest CT: the node as device observer,
    the source images and `segmentation` as evidence, UIDs derived from the source series, `algorithm` and the
    input digest, `notes` as comments, `predecessor` (the SR it replaces) as its predecessor document."""
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
        imaging_measurements=list(groups),
    )
    report = hd.sr.Comprehensive3DSR(
        evidence=[*sources.headers, segmentation],
        content=report,
        series_instance_uid=derived_uid(source_series_uid, algorithm, "sr", "series", inputs=sources.input_digest),
        series_number=algorithm.series_number(ResultSeries.SR),
        sop_instance_uid=report_uid(source_series_uid, algorithm, sources.input_digest),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,  # not verified by a physician: preliminary
        series_description=series_description,
        coding_schemes=[concepts.private_coding_scheme()],
        previous_versions=[predecessor] if predecessor is not None else None,
    )
    for note in notes:
        report.ContentSequence.append(
            hd.sr.TextContentItem(name=concepts.COMMENT, value=note, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        )
    return stamp(report, created)


def tracking(source_series_uid: str, algorithm: AlgorithmId, name: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=derived_uid(source_series_uid, algorithm, "sr", "group", name), identifier=name)


def _segment_reference(segmentation: Dataset, spec: SegmentSpec, source_series_uid: str) -> hd.sr.ReferencedSegment:
    return hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID,
        sop_instance_uid=segmentation.SOPInstanceUID,
        segment_number=spec.number,
        source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid),
    )


def segment_group(
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


def comment(group: hd.sr.MeasurementsAndQualitativeEvaluations, text: str) -> None:
    group[0].ContentSequence.append(
        hd.sr.TextContentItem(name=concepts.COMMENT, value=text[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    )


def yes_no(name: Code, value: bool) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(name=name, value=concepts.YES if value else concepts.NO)


def fitness_group(
    flags: tuple[FitnessFlag, ...], source_series_uid: str, algorithm: AlgorithmId
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(source_series_uid, algorithm, "Fitness for the method"),
        finding_type=concepts.FITNESS,
        qualitative_evaluations=[
            yes_no(concepts.WITHIN_VALIDATED_RANGE, not flags),
            *(yes_no(concepts.fitness_flag(flag.code, flag.title), True) for flag in flags),
        ],
    )
    for flag in flags:
        comment(group, f"{flag.title}: {flag.reason}")
    return group
