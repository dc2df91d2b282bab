"""The lung and opacity masks as one DICOM Segmentation per source series.

A BINARY Segmentation (highdicom) with three segments that may overlap
(opacity lies inside the lungs), in the source study and frame of reference,
in a new series whose UIDs are derived from the source series and the
algorithm (see `uids`).  highdicom records, per frame, which source slice it
was derived from, so a viewer can overlay it on the CT.

The segments' colours (`SegmentSpec.rgb`) are the node's one colour per
structure: the SEG's recommended display colour, the key images and the web
viewer all use them.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import highdicom as hd
import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.output import concepts
from dicom_node.output.colours import LEFT_LUNG_RGB, OPACITY_RGB, RIGHT_LUNG_RGB
from dicom_node.output.frame_items import EncodedOnce, ready_to_write
from dicom_node.output.series import SEG_DESCRIPTION, stamp
from dicom_node.output.sources import SourceImages
from dicom_node.output.uids import MANUFACTURER, AlgorithmId, ResultSeries, derived_uid

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import PipelineResult

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


RIGHT_LUNG = SegmentSpec(1, "Right lung", concepts.ANATOMICAL_STRUCTURE, concepts.LUNG, concepts.RIGHT, RIGHT_LUNG_RGB)
LEFT_LUNG = SegmentSpec(2, "Left lung", concepts.ANATOMICAL_STRUCTURE, concepts.LUNG, concepts.LEFT, LEFT_LUNG_RGB)
OPACITY = SegmentSpec(
    3, "Lung opacity", concepts.MORPHOLOGICALLY_ABNORMAL_STRUCTURE, concepts.OPACITY, None, OPACITY_RGB
)
SEGMENTS = (RIGHT_LUNG, LEFT_LUNG, OPACITY)


def segment_tracking_uid(source_series_uid: str, algorithm: AlgorithmId, segment: SegmentSpec) -> str:
    """The Tracking UID of a segment, shared with the SR measurement group about it."""
    return derived_uid(source_series_uid, algorithm, "seg", "segment", segment.number)


def segment_masks(result: PipelineResult, z_indices: Sequence[int] | None = None) -> np.ndarray:
    """The masks stacked as (z, y, x, segment) in the order of SEGMENTS, for all slices or those in `z_indices`."""
    packed = packed_segments(result, z_indices)
    return np.stack([(packed & (1 << (spec.number - 1))) > 0 for spec in SEGMENTS], axis=-1)


def packed_segments(result: PipelineResult, z_indices: Sequence[int] | None = None) -> np.ndarray:
    """The segments as one uint8 (z, y, x) array whose bit `number - 1` marks segment `number` (see SEGMENTS)."""
    labels, opacity = result.lung_labels, result.opacity_mask
    if labels.shape != opacity.shape or labels.shape != result.volume.hu.shape:
        raise ValueError(
            f"mask shapes {labels.shape} / {opacity.shape} differ from the volume {result.volume.hu.shape}"
        )
    if z_indices is not None and list(z_indices) != list(range(labels.shape[0])):
        labels, opacity = labels[list(z_indices)], opacity[list(z_indices)]
    if int(labels.max(initial=0)) > LUNG_LABEL_LEFT:
        raise ValueError(f"lung labels above {LUNG_LABEL_LEFT}: {int(labels.max())}")
    # Labels 1 (right) and 2 (left) are already bits 0 and 1; the opacity is bit 2 (one new array, no temporary).
    packed = np.left_shift(opacity.view(np.uint8), OPACITY.number - 1)
    np.bitwise_or(packed, labels, out=packed, casting="unsafe")
    return packed


class _PackedSegmentation(hd.seg.Segmentation):
    """highdicom's Segmentation, fed one uint8 array whose bit `k - 1` marks segment `k`.

    highdicom takes overlapping segments only as a one-hot (z, y, x, segment)
    stack, which it sums over the segment axis to learn whether they overlap:
    for P001 a 116 MB stack and a 310 MB int64 sum, 1.5 s and most of the
    job's peak memory.  The packed array is a third of the stack, the overlap
    is one pass over it, and each frame is unpacked from its bit when
    highdicom encodes it.  (The two hooks are highdicom's own per-array and
    per-frame steps, overridden with the same signatures; `_build_luts` below
    is its index for reading frames back, which a SEG that is only saved
    does not need.)
    """

    @classmethod
    def _check_and_cast_pixel_array(  # type: ignore[override]
        cls, pixel_array: np.ndarray, segment_numbers: np.ndarray, segmentation_type: Any, dtype: type
    ) -> tuple[np.ndarray, hd.seg.SegmentsOverlapValues]:
        if pixel_array.dtype != np.uint8 or pixel_array.ndim != 3:
            raise ValueError(f"packed segments must be uint8 (z, y, x), got {pixel_array.dtype} {pixel_array.shape}")
        if int(pixel_array.max()) >> len(segment_numbers):
            raise ValueError(f"packed segments use bits beyond the {len(segment_numbers)} described segments")
        # more than one bit set somewhere; slice by slice, as two full-size temporaries cost more than the test
        overlap = any(np.any(plane & (plane - np.uint8(1))) for plane in pixel_array)
        return pixel_array, hd.seg.SegmentsOverlapValues.YES if overlap else hd.seg.SegmentsOverlapValues.NO

    @staticmethod
    def _get_segment_pixel_array(  # type: ignore[override]
        pixel_array: np.ndarray, segment_number: int, described_segment_numbers: np.ndarray,
        segmentation_type: Any, max_fractional_value: int, dtype: type,
    ) -> np.ndarray:
        return ((pixel_array >> (segment_number - 1)) & 1).astype(dtype, copy=False)

    def _build_luts(self) -> None:
        """Skipped: highdicom indexes the new object's frames for its reading API (0.2-0.5 s); the node only saves it."""

    def _get_pffg_item(  # type: ignore[override]
        self, dimension_index_values: list[int], plane_position: Any, derivation_source_image_items: Any,
        coordinate_system: Any, derivation: Any,
    ) -> Dataset:
        """highdicom's per-frame item, with the plane position and the derivation encoded once per source slice
        (`frame_items.py`); the frame's own dimension index stays a plain element."""
        encoded = self.__dict__.setdefault("_encoded_once", EncodedOnce())
        item, content = Dataset(), Dataset()
        content.add(DataElement(0x00209157, "UL", dimension_index_values))  # DimensionIndexValues
        item.add(DataElement(0x00209111, "SQ", [content]))  # FrameContentSequence
        if coordinate_system is not None:
            slide = coordinate_system == hd.CoordinateSystemNames.SLIDE
            tag = 0x0048021A if slide else 0x00209113  # PlanePositionSlideSequence, PlanePositionSequence
            item.add(encoded.element(tag, plane_position, plane_position))
        if derivation_source_image_items:
            derived = Dataset()
            derived.add(DataElement(0x00089215, "SQ", [derivation]))  # DerivationCodeSequence
            derived.add(DataElement(0x00082112, "SQ", derivation_source_image_items))  # SourceImageSequence
            item.add(encoded.element(0x00089124, derivation_source_image_items, [derived]))  # DerivationImageSequence
        else:
            item.add(DataElement(0x00089124, "SQ", []))
        return item


def build_segmentation(
    result: PipelineResult, sources: SourceImages, algorithm: AlgorithmId, created: datetime
) -> hd.seg.Segmentation:
    """The SEG for `result`, one frame per segment and source image where the segment is present."""
    return build_packed_segmentation(
        result.volume.series_instance_uid,
        packed_segments(result, sources.z_indices),
        SEGMENTS,
        sources,
        algorithm,
        created,
        SegContent(SEG_DESCRIPTION, "Lungs and lung opacity, automatic", "LUNG_OPACITY"),
    )


@dataclass(frozen=True)
class SegContent:
    """How a SEG names what it holds: its series description, content description and content label (CS, 16)."""

    series_description: str
    content_description: str
    content_label: str


def build_packed_segmentation(
    source_series_uid: str,
    packed: np.ndarray,
    segments: Sequence[SegmentSpec],
    sources: SourceImages,
    algorithm: AlgorithmId,
    created: datetime,
    content: SegContent,
) -> hd.seg.Segmentation:
    """A BINARY SEG of `segments` from one uint8 array of the source slices (`sources.z_indices`, z, y, x) whose
    bit `number - 1` marks segment `number`: any pipeline's masks, with UIDs derived from the source series,
    `algorithm` and the input digest."""
    algorithm_identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name, family=codes.cid7162.ArtificialIntelligence, version=algorithm.version
    )
    descriptions = [
        _segment_description(spec, algorithm_identification, segment_tracking_uid(source_series_uid, algorithm, spec))
        for spec in segments
    ]
    segmentation = _PackedSegmentation(
        source_images=sources.headers,
        pixel_array=packed,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=derived_uid(source_series_uid, algorithm, "seg", "series", inputs=sources.input_digest),
        series_number=algorithm.series_number(ResultSeries.SEG),
        sop_instance_uid=derived_uid(source_series_uid, algorithm, "seg", "instance", inputs=sources.input_digest),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        # Type 1 in the Enhanced General Equipment module; the node's host
        # name tells which node of a deployment produced the object.
        device_serial_number=platform.node() or "unknown",
        series_description=content.series_description,
        content_description=content.content_description,
        content_label=content.content_label,
        omit_empty_frames=True,
    )
    # highdicom draws a random Dimension Organization UID: derived instead, so that a re-run writes the same object.
    organization = derived_uid(source_series_uid, algorithm, "seg", "dimension-organization")
    for item in [*segmentation.DimensionOrganizationSequence, *segmentation.DimensionIndexSequence]:
        item.DimensionOrganizationUID = organization
    stamp(segmentation, created)
    segmentation.__dict__.pop("_encoded_once", None)
    ready_to_write(segmentation)
    return segmentation


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
