"""What the lung-density pipeline writes for one series, with the shared output builders.

- SEG (`output/seg.py` build_packed_segmentation): right lung, left lung and the low-attenuation voxels (what
  RA-950 counts), in the segment colours the key images and the viewer use;
- TID 1500 SR (`output/report.py` measurement_report): the headline (RA-950 and Perc15 of both lungs, within the
  profile or not), the fitness group, one group per lung referencing its segment (volume, RA-950, Perc15, mean
  lung density), the low-attenuation segment's volume, both lungs, and one group per zone; codes in `concepts.py`;
- summary page and a key image (`output/secondary_capture.py`): the slice with the most low-attenuation area;
- result.csv (a row per region), result.json (the manifest) and masks.npz (the viewer's overlays).
Every figure is written at its clinical precision (`output/display.py`: 0.1 mL, 0.01 %; HU to 0.1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import datetime

import highdicom as hd
from highdicom.sc import SCImage
import numpy as np
from pydicom import dcmread

from dicom_node.output import concepts as shared
from dicom_node.output import highdicom_tables
from dicom_node.output.display import rounded
from dicom_node.output.masks import save_masks
from dicom_node.output.inputs import completeness, lineage
from dicom_node.output.results import save_dicom
from dicom_node.output.secondary_capture import KeyImageSeries, key_image, render_slice, render_summary, slice_label, summary_capture
from dicom_node.output.seg import LEFT_LUNG, RIGHT_LUNG, SegContent, SegmentSpec, build_packed_segmentation
from dicom_node.output.sources import SourceImages, read_source_images
from dicom_node.output.report import comment, fitness_group, measurement_report, segment_group, tracking, yes_no
from dicom_node.output.summary import MARK, SummaryRow
from dicom_node.output.uids import AlgorithmId
from dicom_node.pipelines.lung_density import concepts
from dicom_node.pipelines.lung_density.density import DensityFigures, LungDensity
from dicom_node.pipelines.lung_density.manifest import LOW_ATTENUATION_RGB, OVERLAYS, Density, Figures, LungDensityHeadline, LungDensityManifest
from dicom_node.pipelines.lung_density.pipeline import LungDensityResult
from dicom_node.pipelines.protocol import ResultTarget
from dicom_node.store.files import write_durably

HU_DECIMALS = 1
SEG_DESCRIPTION = "AI lungs and low-attenuation lung (segmentation)"
SR_DESCRIPTION = "AI lung density report (RA-950, Perc15, lung volume)"
KEY_IMAGES_DESCRIPTION = "AI key image: low-attenuation lung outlined"
SUMMARY_DESCRIPTION = "AI summary: lung density (QIBA CT lung densitometry)"
PROFILE = "QIBA CT Lung Densitometry profile"
MASKS_FILE = "masks.npz"


def low_attenuation_segment(threshold_hu: int) -> SegmentSpec:
    return SegmentSpec(
        3, f"Lung below {threshold_hu} HU", shared.MORPHOLOGICALLY_ABNORMAL_STRUCTURE, concepts.low_attenuation(threshold_hu),
        None, LOW_ATTENUATION_RGB,
    )


def write_lung_density(result: LungDensityResult, target: ResultTarget, pipeline: str, algorithm: AlgorithmId) -> LungDensityManifest:
    """Write every file of `result` into `target.out_dir` and return the manifest the job row keeps (`pipeline`:
    the registry's name)."""
    highdicom_tables.prepare()
    created = datetime.now()
    out = target.out_dir
    out.mkdir(parents=True, exist_ok=True)
    job_input = target.job_input
    sources = read_source_images(result.volume, job_input.digest)
    complete = completeness(result.volume, sources.headers, job_input)
    predecessor = job_input.predecessor
    notes = [*complete.notes, *([predecessor.note] if predecessor else [])]
    previous = dcmread(predecessor.sr_path, stop_before_pixels=True) if predecessor else None
    segments = (RIGHT_LUNG, LEFT_LUNG, low_attenuation_segment(result.density.threshold_hu))
    series_uid = result.volume.series_instance_uid
    segmentation = build_packed_segmentation(
        series_uid, packed_masks(result, sources.z_indices), segments, sources, algorithm, created,
        SegContent(SEG_DESCRIPTION, "Lungs and lung below the low-attenuation threshold, automatic", "LUNG_DENSITY"),
    )
    seg_path = save_dicom(segmentation, out / "seg.dcm")
    groups = report_groups(result, segmentation, segments, algorithm)
    report = measurement_report(series_uid, groups, segmentation, sources, algorithm, created, notes, previous, SR_DESCRIPTION)
    del segmentation
    sr_path = save_dicom(report, out / "sr.dcm")
    summary_path, key_paths = out / "summary.dcm", []
    if target.secondary_capture:
        save_dicom(summary_page(result, sources, algorithm, created, notes, segments), summary_path)
        key_paths = [save_dicom(image, out / f"sc-{image.InstanceNumber:03d}.dcm") for image in key_images(result, sources, algorithm, created, segments)]
    elif summary_path.exists():
        summary_path.unlink()
    for stale in set(out.glob("sc-*.dcm")) - set(key_paths):
        stale.unlink()
    masks = save_masks({"lung_labels": result.lung_labels, "low_attenuation": result.low_attenuation}, out / MASKS_FILE)
    csv_path = out / "result.csv"
    write_durably(csv_path, csv_text(result.density).encode())
    json_path = out / "result.json"
    manifest = LungDensityManifest.model_validate(
        {
            "pipeline": pipeline,
            "algorithm_version": algorithm.version,
            "files": {
                "seg": target.relative(seg_path), "sr": target.relative(sr_path), "csv": target.relative(csv_path),
                "json": target.relative(json_path), "masks": target.relative(masks),
            },
            "summary": target.relative(summary_path) if target.secondary_capture else None,
            "secondary_capture": [target.relative(p) for p in key_paths],
            "warnings": sources.warnings,
            "input": lineage(job_input, complete, previous),
            "headline": headline(result).model_dump(),
            "fitness_flags": [flag.as_dict() for flag in result.fitness],
            "density": stored_density(result.density).model_dump(),
            "acquisition": result.acquisition.model_dump(),
            "overlays": [overlay.model_dump() for overlay in OVERLAYS],
        }
    )
    write_durably(json_path, manifest.model_dump_json(by_alias=True, indent=2).encode())
    return manifest


def packed_masks(result: LungDensityResult, z_indices: Sequence[int]) -> np.ndarray:
    """The SEG's segments of the source slices as one uint8 (z, y, x): bits 0 and 1 the lungs (their labels 1, 2),
    bit 2 the low-attenuation voxels."""
    z = list(z_indices)
    packed = np.left_shift(result.low_attenuation[z].view(np.uint8), 2)
    np.bitwise_or(packed, result.lung_labels[z], out=packed)
    return packed


def hu(value: float) -> float:
    return round(float(value), HU_DECIMALS)


def stored_figures(figures: DensityFigures) -> Figures:
    """One region's figures at clinical precision, as the manifest keeps them (an empty region's HU figures: None)."""
    return Figures(
        voxels=figures.voxels,
        volume_ml=rounded(figures.volume_ml, "mL"),
        ra950_percent=rounded(figures.ra950_percent, "%"),
        perc15_hu=hu(figures.perc15_hu),
        mean_hu=hu(figures.mean_hu),
    )


def stored_density(density: LungDensity) -> Density:
    return Density(
        threshold_hu=density.threshold_hu,
        percentile=density.percentile,
        lungs={side: stored_figures(f) for side, f in density.lungs.items()},
        zones={zone: stored_figures(f) for zone, f in density.zones.items()},
    )


def headline(result: LungDensityResult) -> LungDensityHeadline:
    """RA-950 and Perc15 of both lungs in one line; marked, with the flags' titles, when the scan is unfit."""
    total, density = result.density.total, result.density
    text = f"RA{density.threshold_hu} {rounded(total.ra950_percent, '%'):.2f}%, Perc{density.percentile:g} {total.perc15_hu:.0f} HU"
    if result.fitness:
        text += f" {MARK} not fit for densitometry: " + "; ".join(flag.title for flag in result.fitness)
    return LungDensityHeadline(
        text=text,
        marked=bool(result.fitness),
        ra950_percent=rounded(total.ra950_percent, "%"),
        perc15_hu=hu(total.perc15_hu) if total.voxels else None,
        lung_volume_ml=rounded(total.volume_ml, "mL"),
    )


def csv_text(density: LungDensity) -> str:
    """One row per region: the lungs, both lungs, the zones."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["region", "voxels", "volume_ml", f"ra{abs(density.threshold_hu)}_percent", f"perc{density.percentile:g}_hu", "mean_hu"])
    regions = [*density.lungs.items(), *((f"{zone} zone", f) for zone, f in density.zones.items())]
    for name, figures in regions:
        writer.writerow([name, *stored_figures(figures).model_dump().values()])
    return buffer.getvalue()


def _measurements(figures: DensityFigures, density: LungDensity) -> list[hd.sr.Measurement]:
    """Volume, RA-950, Perc15 and mean lung density of one region (the HU figures only for a region with voxels)."""
    found = [
        hd.sr.Measurement(
            name=shared.VOLUME, value=rounded(figures.volume_ml, "mL"), unit=shared.MILLILITER, method=shared.SUM_OF_SEGMENTED_VOXELS
        ),
        hd.sr.Measurement(name=concepts.relative_area(density.threshold_hu), value=rounded(figures.ra950_percent, "%"), unit=shared.PERCENT),
    ]
    if figures.voxels:
        found += [
            hd.sr.Measurement(name=concepts.percentile_density(density.percentile), value=hu(figures.perc15_hu), unit=concepts.HOUNSFIELD_UNIT),
            hd.sr.Measurement(name=concepts.MEAN_LUNG_DENSITY, value=hu(figures.mean_hu), unit=concepts.HOUNSFIELD_UNIT),
        ]
    return found


def report_groups(
    result: LungDensityResult, segmentation: hd.seg.Segmentation, segments: Sequence[SegmentSpec], algorithm: AlgorithmId
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """The SR's measurement groups, the headline first (see the module's docstring)."""
    density, uid = result.density, result.volume.series_instance_uid
    both = [hd.sr.FindingSite(shared.LUNG, laterality=shared.RIGHT_AND_LEFT)]
    total = density.total
    headline_group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(uid, algorithm, "Lung density"),
        finding_type=concepts.PULMONARY_EMPHYSEMA,
        finding_sites=both,
        measurements=_measurements(total, density)[1:],  # RA-950, Perc15 and the mean: the volume is both lungs' group's
        qualitative_evaluations=[yes_no(shared.WITHIN_VALIDATED_RANGE, result.fit)],
    )
    comment(headline_group, f"Measured as the {PROFILE} defines its figures, on the series' own voxels")
    if result.fitness:
        comment(headline_group, "Not fit for lung densitometry: " + "; ".join(flag.title for flag in result.fitness))
    right, left, low = segments
    low_ml = float(np.count_nonzero(result.low_attenuation)) * result.volume.voxel_volume_ml
    context = (segmentation, uid, algorithm)
    return [
        headline_group,
        fitness_group(result.fitness, uid, algorithm),
        segment_group(right, shared.RIGHT, _measurements(density.lungs["right"], density), *context),
        segment_group(left, shared.LEFT, _measurements(density.lungs["left"], density), *context),
        segment_group(
            low, shared.RIGHT_AND_LEFT,
            [hd.sr.Measurement(name=concepts.LOW_ATTENUATION_VOLUME, value=rounded(low_ml, "mL"), unit=shared.MILLILITER)],
            *context,
        ),
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking(uid, algorithm, "Both lungs"), finding_type=shared.LUNG, finding_sites=both,
            measurements=_measurements(total, density),
        ),
        *(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking(uid, algorithm, f"{zone.capitalize()} zone"),
                finding_type=shared.LUNG,
                finding_sites=[hd.sr.FindingSite(concepts.LUNG_ZONES[zone], laterality=shared.RIGHT_AND_LEFT)],
                measurements=_measurements(figures, density),
            )
            for zone, figures in density.zones.items()
        ),
    ]


def headline_lines(result: LungDensityResult) -> list[str]:
    """The summary page's headline: RA-950 and Perc15 (large), then fitness: each flag, or 'fit'."""
    density, total = result.density, result.density.total
    mark = f" {MARK}" if result.fitness else ""
    lines = [
        f"RA{density.threshold_hu} {rounded(total.ra950_percent, '%'):.2f}% of both lungs{mark}",
        f"Perc{density.percentile:g} {total.perc15_hu:.0f} HU, mean {hu(total.mean_hu):.1f} HU{mark}",
    ]
    if result.fitness:
        lines.append(f"{MARK} Not fit for lung densitometry ({PROFILE}), figures are biased:")
        lines += [f"  {flag.title}" for flag in result.fitness]
    else:
        lines.append(f"Acquisition fit for the {PROFILE}")
    return lines


def summary_rows(density: LungDensity) -> list[SummaryRow]:
    def per_side(value: Callable[[DensityFigures], float | str]) -> dict[str, float | str]:
        return {side: value(f) for side, f in density.lungs.items()}

    both = "total"
    rows = [
        SummaryRow("Lung volume", "mL", per_side(lambda f: rounded(f.volume_ml, "mL"))),
        SummaryRow(f"RA{density.threshold_hu} (% of lung)", "%", per_side(lambda f: rounded(f.ra950_percent, "%"))),
        SummaryRow(f"Perc{density.percentile:g}", "", per_side(lambda f: f"{f.perc15_hu:.0f} HU" if f.voxels else "")),
        SummaryRow("Mean lung density", "", per_side(lambda f: f"{hu(f.mean_hu):.1f} HU" if f.voxels else "")),
    ]
    rows += [
        SummaryRow(f"RA{density.threshold_hu}, {zone} zone", "%", {both: rounded(f.ra950_percent, "%")})
        for zone, f in density.zones.items()
    ]
    return rows


def acquisition_lines(result: LungDensityResult) -> list[str]:
    acquisition = result.acquisition
    contrast = f"contrast agent {acquisition.contrast_agent}" if acquisition.contrast_agent else "no contrast agent in the header"
    return [
        f"Kernel {acquisition.kernel or 'not given'}, sections {acquisition.slice_thickness_mm:g} mm, {contrast}",
        f"Lung parenchyma noise {acquisition.noise_hu:.1f} HU (fine-scale, on the series' own grid)",
        "Zones are thirds of each lung's height, not lobes",
    ]


def summary_page(
    result: LungDensityResult, sources: SourceImages, algorithm: AlgorithmId, created: datetime, notes: Sequence[str],
    segments: Sequence[SegmentSpec],
) -> SCImage:
    pixels = render_summary(
        headline_lines(result), summary_rows(result.density), [*acquisition_lines(result), *(f"Note: {n}" for n in notes)],
        algorithm, title="Lung density: automatic densitometry", legend=segments,
    )
    return summary_capture(pixels, result.volume.series_instance_uid, sources, algorithm, created, SUMMARY_DESCRIPTION)


def key_slice(result: LungDensityResult, sources: SourceImages) -> int:
    """The source slice with the largest low-attenuation area; without any, the middle slice holding lung."""
    real = np.asarray(sources.z_indices)
    area = np.count_nonzero(result.low_attenuation, axis=(1, 2))[real]
    if area.max(initial=0) > 0:
        return int(real[int(np.argmax(area))])
    with_lung = real[result.lung_labels.any(axis=(1, 2))[real]]
    candidates = with_lung if with_lung.size else real
    return int(candidates[len(candidates) // 2])


def key_images(
    result: LungDensityResult, sources: SourceImages, algorithm: AlgorithmId, created: datetime, segments: Sequence[SegmentSpec]
) -> list[SCImage]:
    z = key_slice(result, sources)
    header = dict(zip(sources.z_indices, sources.headers))[z]
    masks = np.stack([result.lung_labels[z] == 1, result.lung_labels[z] == 2, result.low_attenuation[z]], axis=-1)
    legend = f"{headline(result).text}\n{slice_label(header, sources.headers)}"
    rgb = render_slice(result.volume.hu[z], masks, legend, segments)
    derivation = f"CT slice in lung window with the lungs and the lung below {result.density.threshold_hu} HU outlined"
    series = KeyImageSeries(result.volume.series_instance_uid, KEY_IMAGES_DESCRIPTION, derivation)
    return [key_image(rgb, header, 1, series, sources, algorithm, created)]
