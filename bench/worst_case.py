"""Peak memory of the worst series the volume limits let through, and of the one they now refuse.

    PYTHONPATH=. python -m bench.worst_case

The refused case is the issue's: 34 slices of 128 x 128 (1.1 MB) with PixelSpacing 8 mm and 30 mm gaps, which
once took 54 s and 4.3 GB. The accepted case is the same series at 5.4 mm (a 691 mm field of view, just under
`pipeline.load.max_field_of_view_mm`), whose model grid (about 74 million voxels) is close to
`pipeline.segmentation.max_grid_voxels`: the largest grid a job may build. Each case runs in its own process
(the embedded models, as the worker runs them), so its peak RSS is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pydicom


def write_case(folder: Path, pixel_mm: float, gap_mm: float) -> Path:
    from phantoms.chest import make_phantom, write_phantom_series

    for k, path in enumerate(write_phantom_series(make_phantom((128, 128, 34), seed=7), folder)):
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = [f"{pixel_mm:g}", f"{pixel_mm:g}"]
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], f"{k * gap_mm:.1f}"]
        ds.save_as(path)
    return folder


def run_one(folder: str) -> None:
    """In the child: the pipeline on one folder; prints outcome, seconds and peak RSS as JSON."""
    from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
    from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
    from dicom_node.pipelines.covid19.pipeline import run_covid19
    from dicom_node.pipeline.errors import SeriesRejected

    started = time.perf_counter()
    try:
        run_covid19(sorted(Path(folder).glob("*.dcm")), EmbeddedLungSegmenter(), EmbeddedOpacityBaseline())
        outcome = "done"
    except SeriesRejected as exc:
        outcome = f"refused: {exc}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"outcome": outcome, "seconds": round(time.perf_counter() - started, 1), "peak_rss_gb": round(peak, 2)}))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, pixel_mm in (("issue case, PixelSpacing 8 mm", 8.0), ("largest accepted, PixelSpacing 5.4 mm", 5.4)):
            folder = write_case(Path(tmp) / name.split(",")[0].replace(" ", "_"), pixel_mm, 30.0)
            child = subprocess.run([sys.executable, "-m", "bench.worst_case", "--run", str(folder)], capture_output=True, text=True, check=True)
            print(f"{name}, 30 mm gaps: {child.stdout.strip()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        run_one(sys.argv[2])
    else:
        main()
