"""Phantom series are valid CT Image Storage that highdicom can reference, and the CLI writes them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from phantoms.chest import Phantom

REPO = Path(__file__).resolve().parents[2]


def test_phantom_series_headers(clear_phantom: Phantom, clear_series: list[Path]):
    headers = [pydicom.dcmread(p) for p in clear_series]
    assert len(headers) == clear_phantom.hu.shape[0]
    assert {h.SOPClassUID for h in headers} == {pydicom.uid.CTImageStorage}
    assert {h.file_meta.TransferSyntaxUID for h in headers} == {pydicom.uid.ExplicitVRLittleEndian}
    assert len({h.SeriesInstanceUID for h in headers}) == 1 and len({h.SOPInstanceUID for h in headers}) == len(headers)
    assert list(headers[0].ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    hu = headers[3].pixel_array.astype(np.int32) * int(headers[3].RescaleSlope) + int(headers[3].RescaleIntercept)
    assert np.array_equal(hu, clear_phantom.hu[3])


def test_highdicom_builds_a_segmentation_on_phantom_slices(clear_phantom: Phantom, clear_series: list[Path]):
    sources = [pydicom.dcmread(p) for p in clear_series[30:34]]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=(clear_phantom.lungs[30:34] > 0).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="Lung",
                segmented_property_category=codes.SCT.Organ,
                segmented_property_type=codes.SCT.Lung,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            )
        ],
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="dicom-node",
        manufacturer_model_name="test",
        software_versions="0",
        device_serial_number="0",
    )
    assert seg.NumberOfFrames >= 1


def test_cli_writes_a_series(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "phantoms.chest", str(tmp_path), "--size", "64", "64", "24", "--opacity", "0.1"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    files = sorted(tmp_path.glob("*.dcm"))
    assert len(files) == 24
    assert pydicom.dcmread(files[0]).Rows == 64
    assert "24 slices written" in done.stdout
