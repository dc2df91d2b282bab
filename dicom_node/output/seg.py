"""The lung and opacity masks as one DICOM Segmentation per source series.

A BINARY Segmentation (highdicom) with three segments that may overlap
(opacity lies inside the lungs), in the source study and frame of reference,
in a new series whose UIDs are derived from the source series and the
algorithm (see `uids`).  highdicom records, per frame, which source slice it
was derived from, so a viewer can overlay it on the CT.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.output import concepts
from dicom_node.output.sources import SourceImages
from dicom_node.output.uids import MANUFACTURER, AlgorithmId, derived_uid
from dicom_node.pipeline.covid19 import PipelineResult

SEG_SERIES_NUMBER = 9001  # high, so derived series sort after the acquired ones in viewers
LUNG_LABEL_RIGHT = 1  # the pipeline's label values (docs/architecture.md)
LUNG_LABEL_LEFT = 2


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: its number in the SEG and how it is coded and shown."""

    number: int
    label: str
    category: Code
    property_type: Code
    laterality: Code | None
    rgb: tuple[int, int, int]


RIGHT_LUNG = SegmentSpec(1, "Right lung", concepts.ANATOMICAL_STRUCTURE, concepts.LUNG, concepts.RIGHT, (80, 160, 255))
LEFT_LUNG = SegmentSpec(2, "Left lung", concepts.ANATOMICAL_STRUCTURE, concepts.LUNG, concepts.LEFT, (80, 255, 160))
OPACITY = SegmentSpec(
    3, "Lung opacity", concepts.MORPHOLOGICALLY_ABNORMAL_STRUCTURE, concepts.OPACITY, None, (255, 120, 40)
)
SEGMENTS = (RIGHT_LUNG, LEFT_LUNG, OPACITY)


def segment_tracking_uid(source_series_uid: str, algorithm: AlgorithmId, segment: SegmentSpec) -> str:
    """The Tracking UID of a segment, shared with the SR measurement group about it."""
    return derived_uid(source_series_uid, algorithm, "seg", "segment", segment.number)


def segment_masks(result: PipelineResult, z_indices: Sequence[int] | None = None) -> np.ndarray:
    """The masks stacked as (z, y, x, segment) in the order of SEGMENTS, for all slices or those in `z_indices`."""
    labels, opacity = result.lung_labels, result.opacity_mask
    if labels.shape != opacity.shape or labels.shape != result.volume.hu.shape:
        raise ValueError(
            f"mask shapes {labels.shape} / {opacity.shape} differ from the volume {result.volume.hu.shape}"
        )
    if z_indices is not None:
        labels, opacity = labels[list(z_indices)], opacity[list(z_indices)]
    return np.stack([labels == LUNG_LABEL_RIGHT, labels == LUNG_LABEL_LEFT, opacity.astype(bool)], axis=-1)


def build_segmentation(result: PipelineResult, sources: SourceImages, algorithm: AlgorithmId) -> hd.seg.Segmentation:
    """The SEG for `result`, one frame per segment and source image where the segment is present."""
    source_series_uid = result.volume.series_instance_uid
    algorithm_identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name, family=codes.cid7162.ArtificialIntelligence, version=algorithm.version
    )
    descriptions = [
        _segment_description(spec, algorithm_identification, segment_tracking_uid(source_series_uid, algorithm, spec))
        for spec in SEGMENTS
    ]
    return hd.seg.Segmentation(
        source_images=sources.headers,
        pixel_array=segment_masks(result, sources.z_indices),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=derived_uid(source_series_uid, algorithm, "seg", "series"),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=derived_uid(source_series_uid, algorithm, "seg", "instance"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        # Type 1 in the Enhanced General Equipment module; the node's host
        # name tells which node of a deployment produced the object.
        device_serial_number=platform.node() or "unknown",
        series_description=f"{algorithm.name} lungs and opacity"[:64],
        content_description="Lungs and lung opacity, automatic",
        content_label="LUNG_OPACITY",
        omit_empty_frames=True,
    )


def _segment_description(
    spec: SegmentSpec, algorithm_identification: hd.AlgorithmIdentificationSequence, tracking_uid: str
) -> hd.seg.SegmentDescription:
    description = hd.seg.SegmentDescription(
        segment_number=spec.number,
        segment_label=spec.label,
        segmented_property_category=spec.category,
        segmented_property_type=spec.property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm_identification,
        tracking_uid=tracking_uid,
        tracking_id=spec.label,
        anatomic_regions=None if spec.laterality else [concepts.LUNG],
        display_color=hd.color.CIELabColor.from_rgb(*spec.rgb),
    )
    if spec.laterality is not None:
        # Laterality is a modifier of the property type (CID 244), not a code of its own.
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept.from_code(spec.laterality)
        ]
    return description
