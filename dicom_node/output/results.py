"""Everything the node writes for one processed series, written atomically into one directory.

File names are fixed per kind, so a re-run of the same job overwrites its own
files, and the DICOM objects keep their (deterministic) UIDs.
"""

from __future__ import annotations

import io

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicom_node.store.files import write_durably
from dicom_node.output.secondary_capture import build_secondary_captures
from dicom_node.output.seg import build_segmentation
from dicom_node.output.sources import read_source_images
from dicom_node.output.sr import build_report
from dicom_node.output.tables import csv_text, json_text
from dicom_node.output.uids import AlgorithmId
from dicom_node.pipeline.covid19 import PipelineResult


@dataclass(frozen=True)
class ResultFiles:
    """Paths of the files written for one series."""

    seg: Path
    sr: Path
    csv: Path
    json: Path
    secondary_capture: list[Path] = field(default_factory=list)

    def dicom(self) -> list[Path]:
        """The DICOM files to send to the PACS, SEG first (the SR references it)."""
        return [self.seg, self.sr, *self.secondary_capture]


def write_results(
    result: PipelineResult,
    out_dir: Path,
    algorithm_name: str,
    algorithm_version: str,
    secondary_capture: bool = False,
) -> ResultFiles:
    """Write the SEG, the SR, the CSV and the JSON for `result` into `out_dir`.

    With `secondary_capture`, also key slices with burned-in contours
    (sc-001.dcm, ...) for PACS viewers that cannot display a SEG.
    """
    algorithm = AlgorithmId(algorithm_name, algorithm_version)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = read_source_images(result.volume)
    segmentation = build_segmentation(result, sources, algorithm)
    report = build_report(result, segmentation, sources, algorithm)
    seg_path = _save_dicom(segmentation, out_dir / "seg.dcm")
    sr_path = _save_dicom(report, out_dir / "sr.dcm")
    dicom_objects: dict[str, Any] = {"seg": _identity(segmentation), "sr": _identity(report)}
    captures = build_secondary_captures(result, sources, algorithm) if secondary_capture else []
    capture_paths = [_save_dicom(image, out_dir / f"sc-{image.InstanceNumber:03d}.dcm") for image in captures]
    # A previous run may have written more key slices (or any, when now switched off); they are not results any more.
    for stale in set(out_dir.glob("sc-*.dcm")) - set(capture_paths):
        stale.unlink()
    dicom_objects["secondary_capture"] = [_identity(image) for image in captures]
    return ResultFiles(
        seg=seg_path,
        sr=sr_path,
        csv=_save_text(out_dir / "result.csv", csv_text(result, algorithm)),
        json=_save_text(out_dir / "result.json", json_text(result, algorithm, sources.first, dicom_objects)),
        secondary_capture=capture_paths,
    )


def _save_dicom(dataset: Dataset, path: Path) -> Path:
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
