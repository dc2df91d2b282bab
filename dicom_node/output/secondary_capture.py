"""Key images and a summary page: the results as pictures, which every PACS viewer shows.

Two Secondary Capture series per source series:
- key images: the slices with the most opacity plus the mid-lung slice, each
  an RGB image in the lung window with the contours of the right lung, the
  left lung and the opacity drawn in the SEG's segment colours and a legend;
  each references the CT slice it shows;
- a summary page led by the headline (`summary.headline_lines`: the RSNA category,
  the zone-based score and PO, marked when a fitness flag is raised; the category's
  criteria; the flags), then the table of volumes, PO and PHO per lung and the
  pattern, the classifier's answer with its disclaimer, and the colour legend.
  Key images carry the headline in their legend.
No patient identity is burned in.  UIDs are derived like the SEG's, from the
source series, the algorithm and (key images) the source slice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from highdicom import PatientOrientationValuesBiped
from highdicom.sc import SCImage
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from scipy import ndimage

from dicom_node.output.seg import LEFT_LUNG, OPACITY, RIGHT_LUNG, SegmentSpec, segment_masks
from dicom_node.output.series import KEY_IMAGES_DESCRIPTION, SUMMARY_DESCRIPTION, stamp
from dicom_node.output.sources import SourceImages
from dicom_node.output.summary import MARK, SIDES, SummaryRow, classification_lines, headline_lines, headline_text, summary_rows
from dicom_node.output.uids import MANUFACTURER, AlgorithmId, ResultSeries, derived_uid

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import PipelineResult

SUMMARY_SIZE = (1024, 768)  # rows, columns of the summary page
HEADLINE_LARGE_LINES = 2  # category; zone-based score and PO
LUNG_WINDOW_HU = (-1350.0, 150.0)  # centre -600, width 1500
_CONTOURED = (RIGHT_LUNG, LEFT_LUNG, OPACITY)  # drawn in this order: opacity on top


def key_slices(result: PipelineResult, sources: SourceImages, most_opacity: int = 3) -> list[int]:
    """z indices to show: up to `most_opacity` slices with the largest opacity area, and the mid-lung slice.

    Only slices with a source image qualify, so each capture can reference the CT slice it shows.
    """
    real = np.asarray(sources.z_indices)
    # Per-slice sums over the whole volume, then the real slices' entries: no copy of the masks.
    opacity_area = np.count_nonzero(result.opacity_mask, axis=(1, 2))[real]
    ranked = [int(real[i]) for i in np.argsort(-opacity_area, kind="stable") if opacity_area[i] > 0][:most_opacity]
    with_lung = real[result.lung_labels.any(axis=(1, 2))[real]]
    candidates = with_lung if with_lung.size else real
    mid_lung = int(candidates[len(candidates) // 2])
    return sorted({*ranked, mid_lung})


def slice_label(header: Dataset, headers: list[Dataset]) -> str:
    """Where a key image's slice is, as the viewer page and a PACS scroll: its number counted from the head among
    the series' slices (+z points to the head) and its position along z."""
    z = float(header.ImagePositionPatient[2])
    from_head = sorted((float(h.ImagePositionPatient[2]) for h in headers), reverse=True)
    return f"slice {from_head.index(z) + 1} of {len(from_head)} from the head, z {z:.1f} mm"


def build_secondary_captures(
    result: PipelineResult, sources: SourceImages, algorithm: AlgorithmId, created: datetime, most_opacity: int = 3
) -> list[SCImage]:
    """One RGB Secondary Capture image per key slice, in z order."""
    header_at = dict(zip(sources.z_indices, sources.headers))
    series_uid = result.volume.series_instance_uid
    legend = headline_text(result)  # the algorithm is named in the series description
    images = []
    keys = key_slices(result, sources, most_opacity)
    for number, (z, masks) in enumerate(zip(keys, segment_masks(result, keys)), start=1):
        header = header_at[z]
        where = slice_label(header, sources.headers)
        rgb = render_slice(result.volume.hu[z], masks, f"{legend}\n{where}")
        derivation = "CT slice in lung window with lung and opacity contours"
        images.append(key_image(rgb, header, number, KeyImageSeries(series_uid, KEY_IMAGES_DESCRIPTION, derivation), sources, algorithm, created))
    return images


@dataclass(frozen=True)
class KeyImageSeries:
    """What a pipeline's key images are: the source series they derive from, their description, and what each shows."""

    source_series_uid: str
    description: str
    derivation: str


def key_image(
    rgb: np.ndarray,
    header: Dataset,
    number: int,
    series: KeyImageSeries,
    sources: SourceImages,
    algorithm: AlgorithmId,
    created: datetime,
) -> SCImage:
    """One rendered slice (`render_slice`) as key image `number` of its series, referencing the CT slice `header`."""
    where = slice_label(header, sources.headers)
    image = SCImage.from_ref_dataset(
        ref_dataset=header,
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=derived_uid(series.source_series_uid, algorithm, "sc", "series", inputs=sources.input_digest),
        series_number=algorithm.series_number(ResultSeries.KEY_IMAGES),
        sop_instance_uid=derived_uid(
            series.source_series_uid, algorithm, "sc", "instance", header.SOPInstanceUID, inputs=sources.input_digest
        ),
        instance_number=number,
        manufacturer=MANUFACTURER,
        pixel_spacing=tuple(float(v) for v in header.PixelSpacing),
        patient_orientation=patient_orientation(header),
        series_description=series.description,
    )
    stamp(image, created)
    _add_body_part(image, header)
    image.BurnedInAnnotation = "NO"  # contours and a legend, nothing that identifies the patient
    image.DerivationDescription = series.derivation
    image.ImageComments = where  # which slice, for viewers that show the comment rather than the pixels
    image.SourceImageSequence = [_reference(header)]
    return image


def build_summary_page(
    result: PipelineResult, sources: SourceImages, algorithm: AlgorithmId, created: datetime, notes: Sequence[str] = ()
) -> SCImage:
    """The summary page as one RGB Secondary Capture image in a series of its own; `notes` (the input may be
    incomplete, the result it replaces) are written below the classification."""
    pixels = render_summary(
        headline_lines(result), summary_rows(result), [*classification_lines(result.classification), *_wrapped_notes(notes)], algorithm
    )
    return summary_capture(pixels, result.volume.series_instance_uid, sources, algorithm, created)


def summary_capture(
    pixels: np.ndarray,
    source_series_uid: str,
    sources: SourceImages,
    algorithm: AlgorithmId,
    created: datetime,
    description: str = SUMMARY_DESCRIPTION,
) -> SCImage:
    """A rendered summary page (RGB, `render_summary`) as one Secondary Capture image in a series of its own,
    referencing every source slice."""
    header = sources.first
    image = SCImage.from_ref_dataset(
        ref_dataset=header,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        patient_orientation=patient_orientation(header),
        series_instance_uid=derived_uid(source_series_uid, algorithm, "summary", "series", inputs=sources.input_digest),
        series_number=algorithm.series_number(ResultSeries.SUMMARY),
        sop_instance_uid=derived_uid(source_series_uid, algorithm, "summary", "instance", inputs=sources.input_digest),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=description,
    )
    stamp(image, created)
    _add_body_part(image, header)
    image.PatientOrientation = ""  # a page, not a view of the patient: no orientation (Type 2C, may be empty)
    image.BurnedInAnnotation = "NO"  # measurements and a legend, nothing that identifies the patient
    image.DerivationDescription = f"Summary of {algorithm.name} {algorithm.version} results"[:1024]
    image.SourceImageSequence = [_reference(h) for h in sources.headers]
    return image


def _wrapped_notes(notes: Sequence[str]) -> list[str]:
    """Each note as "Note: ..." lines that fit the page's width (about 70 characters of the body font)."""
    return [line for note in notes for line in textwrap.wrap(f"Note: {note}", width=68, subsequent_indent="  ")]


def render_summary(
    headline: list[str],
    rows: list[SummaryRow],
    classification: list[str],
    algorithm: AlgorithmId,
    title: str = "Lung opacity: automatic quantification",
    legend: Sequence[SegmentSpec] = _CONTOURED,
) -> np.ndarray:
    """The summary page as RGB uint8: title, the headline lines (the first two large), the table (a column per
    side), the classifier's lines, the legend. Marked lines (fitness flags) are drawn in amber."""
    height, width = SUMMARY_SIZE
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    title_font, body, small = (ImageFont.load_default(size=size) for size in (26, 19, 17))
    y = 20
    draw.text((24, y), title, fill=(255, 255, 255), font=title_font)
    y += 38
    draw.text((24, y), f"{algorithm.name} {algorithm.version} - preliminary, not verified by a physician", fill=(255, 217, 138), font=body)
    y += 40
    for number, line in enumerate(headline):
        large = number < HEADLINE_LARGE_LINES
        draw.text((24, y), line, fill=(255, 217, 138) if MARK in line else (255, 255, 255), font=title_font if large else small)
        y += 34 if large else 20
    y += 16
    columns = (24, 380, 500, 630)
    for x, text in zip(columns, ("", "Right", "Left", "Both")):
        draw.text((x, y), text, fill=(170, 180, 190), font=body)
    y += 30
    step = 30 if len(rows) <= 8 else 26
    for row in rows:
        draw.text((columns[0], y), row.label, fill=(255, 255, 255), font=body)
        for x, side in zip(columns[1:], SIDES):
            draw.text((x, y), row.cell(side), fill=(255, 255, 255), font=body)
        y += step
    y += 16
    for line in classification:
        draw.text((24, y), line, fill=(255, 217, 138) if line.startswith("Note") else (255, 255, 255), font=body)
        y += step
    y = min(max(y + 20, height - 60), height - 28)  # on the page even when the headline, table and notes fill it
    x = 24
    for spec in legend:
        draw.rectangle((x, y + 4, x + 16, y + 20), fill=spec.rgb)
        draw.text((x + 24, y), spec.label, fill=spec.rgb, font=body)
        x += 48 + int(draw.textlength(spec.label, font=body))
    return np.asarray(image)


def render_slice(hu: np.ndarray, masks: np.ndarray, legend: str, specs: Sequence[SegmentSpec] = _CONTOURED) -> np.ndarray:
    """The slice in the lung window as RGB uint8, with the contour of each segment of `specs` (drawn in their order;
    `masks` is (y, x, segment number - 1)) and the legend drawn in."""
    low, high = LUNG_WINDOW_HU
    grey = np.clip((hu.astype(np.float32) - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for spec in specs:
        mask = masks[..., spec.number - 1]
        rgb[mask & ~ndimage.binary_erosion(mask, iterations=2)] = spec.rgb
    return _draw_legend(rgb, legend, specs)


def _draw_legend(rgb: np.ndarray, legend: str, specs: Sequence[SegmentSpec]) -> np.ndarray:
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, rgb.shape[0] // 40))
    x = 4
    for spec in specs:
        draw.text((x, 4), spec.label, fill=spec.rgb, font=font)
        x += int(draw.textlength(spec.label, font=font)) + 12
    lines = [fitted for line in legend.split("\n") for fitted in _fitted(line, rgb.shape[1] - 8, lambda text: draw.textlength(text, font=font))]
    draw.text((4, 8 + font.size), "\n".join(lines), fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _fitted(line: str, width: float, length: Callable[[str], float]) -> list[str]:
    """`line` broken at spaces into lines no longer than `width` by `length` (a word longer than that stands alone):
    a long headline (an unfit scan's flags) wraps instead of running off the image."""
    lines: list[str] = []
    for word in line.split(" "):
        if lines and length(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def patient_orientation(header: Dataset) -> tuple[str, str]:
    """Patient Orientation (row, column direction) as the dominant LPS axis letter of each image axis."""
    cosines = np.asarray(header.ImageOrientationPatient, dtype=float).reshape(2, 3)
    return tuple(_axis_letter(direction) for direction in cosines)  # type: ignore[return-value]


def _axis_letter(direction: np.ndarray) -> str:
    axis = int(np.argmax(np.abs(direction)))
    positive, negative = (("L", "R"), ("P", "A"), ("H", "F"))[axis]
    return PatientOrientationValuesBiped(positive if direction[axis] > 0 else negative).value


def _add_body_part(image: Dataset, header: Dataset) -> None:
    """Laterality (Type 2C) is needed for paired body parts: carry the body part, or say laterality is unknown."""
    if header.get("BodyPartExamined"):
        image.BodyPartExamined = header.BodyPartExamined
    else:
        image.Laterality = ""


def _reference(header: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    return item
