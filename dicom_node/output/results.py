"""Everything the node writes for one processed series, written atomically into one directory.

File names are fixed per kind, so a re-run of the same job overwrites its own
files, and the DICOM objects keep their (deterministic) UIDs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.output import highdicom_tables
from dicom_node.store.files import write_durably
from dicom_node.output.secondary_capture import build_secondary_captures, build_summary_page
from dicom_node.output.seg import build_segmentation
from dicom_node.output.inputs import JobInput, completeness, lineage
from dicom_node.output.sources import read_source_images
from dicom_node.output.sr import build_report
from dicom_node.output.tables import csv_text, json_text
from dicom_node.output.uids import AlgorithmId

if TYPE_CHECKING:  # the COVID-19 result's shape; no import at run time (the pipeline's package imports this one)
    from dicom_node.pipelines.covid19.pipeline import PipelineResult


@dataclass(frozen=True)
class ResultFiles:
    """Paths of the files written for one series, and what was wrong with the source (empty: nothing)."""

    seg: Path
    sr: Path
    csv: Path
    json: Path
    secondary_capture: list[Path] = field(default_factory=list)
    summary: Path | None = None
    warnings: list[str] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)  # the JSON's "input": digest, completeness, what it replaces

    def dicom(self) -> list[Path]:
        """The DICOM files written, SEG first (the SR references it): the files the job's manifest lists
        (`ResultManifest.dicom_files`, which is what is sent and served), in the same order."""
        summary = [self.summary] if self.summary else []
        return [self.seg, self.sr, *summary, *self.secondary_capture]


def write_results(
    result: PipelineResult,
    out_dir: Path,
    algorithm: AlgorithmId,
    secondary_capture: bool = True,
    job_input: JobInput = JobInput(),
) -> ResultFiles:
    """Write the SEG, the SR, the CSV and the JSON for `result` into `out_dir`.

    With `secondary_capture` (the default), also the summary page (summary.dcm)
    and the key images with burned-in contours (sc-001.dcm, ...), which any
    PACS viewer shows. `job_input` gives the input's digest (the objects' UIDs
    follow it), what is known of its completeness and the result it replaces;
    the SR, the summary page and the JSON say both.
    """
    highdicom_tables.prepare()
    created = datetime.now()
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = read_source_images(result.volume, job_input.digest)
    complete = completeness(result.volume, sources.headers, job_input)
    predecessor = job_input.predecessor
    notes = [*complete.notes, *([predecessor.note] if predecessor else [])]
    segmentation = build_segmentation(result, sources, algorithm, created)
    seg_path = save_dicom(segmentation, out_dir / "seg.dcm")
    dicom_objects: dict[str, Any] = {"seg": _identity(segmentation)}
    previous = dcmread(predecessor.sr_path, stop_before_pixels=True) if predecessor else None
    report = build_report(result, segmentation, sources, algorithm, created, notes, previous)
    del segmentation  # its frames are on disk; the SR needs only its identity
    sr_path = save_dicom(report, out_dir / "sr.dcm")
    dicom_objects["sr"] = _identity(report)
    summary_path = out_dir / "summary.dcm"
    captures, summary = [], None
    if secondary_capture:
        summary = build_summary_page(result, sources, algorithm, created, notes)
        save_dicom(summary, summary_path)
        captures = build_secondary_captures(result, sources, algorithm, created)
    elif summary_path.exists():
        summary_path.unlink()  # switched off since a previous run
    capture_paths = [save_dicom(image, out_dir / f"sc-{image.InstanceNumber:03d}.dcm") for image in captures]
    # A previous run may have written more key slices (or any, when now switched off); they are not results any more.
    for stale in set(out_dir.glob("sc-*.dcm")) - set(capture_paths):
        stale.unlink()
    dicom_objects["summary"] = _identity(summary) if summary is not None else None
    dicom_objects["secondary_capture"] = [_identity(image) for image in captures]
    made_of = lineage(job_input, complete, previous)
    return ResultFiles(
        seg=seg_path,
        sr=sr_path,
        csv=_save_text(out_dir / "result.csv", csv_text(result, algorithm)),
        json=_save_text(
            out_dir / "result.json",
            json_text(result, algorithm, sources.first, dicom_objects, sources.warnings, made_of),
        ),
        secondary_capture=capture_paths,
        summary=summary_path if summary is not None else None,
        warnings=sources.warnings,
        input=made_of,
    )


def save_dicom(dataset: Dataset, path: Path) -> Path:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    write_durably(path, buffer.getbuffer())
    return path


def _save_text(path: Path, text: str) -> Path:
    write_durably(path, text.encode("utf-8"))
    return path


def _identity(dataset: Dataset) -> dict[str, str]:
    return {
        "series_instance_uid": dataset.SeriesInstanceUID,
        "sop_instance_uid": dataset.SOPInstanceUID,
        "sop_class_uid": dataset.SOPClassUID,
    }
