"""The COVID-19 result of one series as digests: per DICOM file written, its UIDs and a hash of its pixels.

Run as a script with either tree on PYTHONPATH (`python -m tests.pipeline.result_digests SERIES_DIR`): it
uses the pipeline's plug-in where the tree has one, else the functions main had before it
(`run_covid19` + `write_results`), with the same input digest, so that two trees' outputs compare (the
creation dates and times differ, the UIDs and pixels must not).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pydicom


def digests(out_dir: Path, files: list[Path]) -> list[dict[str, str]]:
    rows = []
    for path in files:
        ds = pydicom.dcmread(path)
        pixels = hashlib.sha256(ds.PixelData).hexdigest() if "PixelData" in ds else ""
        rows.append(
            {
                "file": str(path.relative_to(out_dir)),
                "sop_class_uid": str(ds.SOPClassUID),
                "series_instance_uid": str(ds.SeriesInstanceUID),
                "sop_instance_uid": str(ds.SOPInstanceUID),
                "pixels_sha256": pixels,
            }
        )
    return rows


def job_input_of(paths: list[Path]):  # type: ignore[no-untyped-def]
    """What a job of these files would be given: their digest (the result's UIDs follow it) and count."""
    from dicom_node.output.inputs import JobInput, stored_input_digest

    return JobInput(stored_input_digest([(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID), p) for p in paths]), len(paths))


def result_digests(series_dir: Path) -> dict[str, object]:
    paths = sorted(series_dir.glob("*.dcm"))
    job_input = job_input_of(paths)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "results" / "1"
        out_dir.mkdir(parents=True)
        try:
            from dicom_node.inference.factory import build_models
            from dicom_node.inference.settings import InferenceSettings
            from dicom_node.pipelines.protocol import ResultTarget, SeriesInput
            from dicom_node.pipelines.registry import pipeline
        except ImportError:  # a tree from before the plug-ins
            from dicom_node.inference.factory import build_models as build_pair  # type: ignore[no-redef]
            from dicom_node.inference.settings import InferenceSettings  # noqa: F811
            from dicom_node.output.results import write_results  # type: ignore[import-not-found]
            from dicom_node.pipeline.covid19 import run_covid19  # type: ignore[import-not-found]

            segmenter, classifier = build_pair(InferenceSettings())
            result = run_covid19(paths, segmenter, classifier)
            files = write_results(result, out_dir, "dicom-node COVID-19 CT", "0.1.0", job_input=job_input).dicom()
            return {"algorithm_version": "0.1.0", "files": digests(out_dir, files)}
        covid = pipeline("covid19_ct")
        processing = covid.settings_type()
        result = covid.run(SeriesInput(tuple(paths)), build_models(InferenceSettings(), covid, processing), processing)
        manifest = covid.write(result, ResultTarget(out_dir, Path(tmp), job_input))
        return {"algorithm_version": covid.algorithm.version, "files": digests(out_dir, [Path(tmp) / name for name in manifest.dicom_files()])}


if __name__ == "__main__":
    print(json.dumps(result_digests(Path(sys.argv[1])), indent=1))
