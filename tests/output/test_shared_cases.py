"""Every object written for the other shared real series passes dciodvfy (P001: test_results.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.output.results import write_results
from dicom_node.output.uids import AlgorithmId
from dicom_node.pipeline.volume import load_series
from tests.node_process import shared_series

from .conftest import result_from_masks, simple_masks
from .dicom_validation import dciodvfy_errors


@pytest.mark.parametrize("case", [("covid-ct-md", "normal001"), ("lung-pet-ct-dx", "A0002-B70f"), ("lung-pet-ct-dx", "A0002-B40f")], ids="/".join)
def test_every_object_passes_dciodvfy(case: tuple[str, str], tmp_path: Path) -> None:
    volume = load_series(sorted(shared_series(*case).glob("*.dcm")))
    files = write_results(result_from_masks(volume, *simple_masks(volume)), tmp_path, AlgorithmId("dicom-node-covid19", "0.1.0"))
    assert files.summary is not None and files.secondary_capture
    assert files.warnings == []
    for path in files.dicom():
        assert dciodvfy_errors(path) == [], path.name
