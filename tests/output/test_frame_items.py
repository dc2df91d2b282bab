"""The SEG's per-frame items encoded once per source slice: the file is byte for byte the one pydicom writes unaided."""

from __future__ import annotations

import io
from datetime import datetime

import highdicom as hd
import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from dicom_node.output import seg
from dicom_node.output.sources import read_source_images
from dicom_node.output.uids import AlgorithmId
from dicom_node.pipelines.covid19.pipeline import PipelineResult

CREATED = datetime(2026, 12, 1, 8, 30)


class _Unaided(seg._PackedSegmentation):
    """The same SEG with highdicom's own per-frame items, written by pydicom alone."""

    _get_pffg_item = staticmethod(hd.seg.Segmentation._get_pffg_item)


def encoded(segmentation: pydicom.Dataset) -> bytes:
    """The file's bytes, the creation times highdicom takes from the clock set to one value."""
    segmentation.InstanceCreationDate, segmentation.InstanceCreationTime = "20261201", "083000"
    for item in segmentation.get("ContributingEquipmentSequence", []):
        item.ContributionDateTime = "20261201083000"
    buffer = io.BytesIO()
    segmentation.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["p001_result", "phantom_with_gap_result"])
def test_the_seg_is_byte_for_byte_what_pydicom_writes_unaided(case: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    result: PipelineResult = request.getfixturevalue(case)
    sources = read_source_images(result.volume)
    algorithm = AlgorithmId("dicom-node-covid19", "0.1.0")

    built = seg.build_segmentation(result, sources, algorithm, CREATED)
    first_frame = built.PerFrameFunctionalGroupsSequence[0]
    assert isinstance(first_frame.get_item(0x00209113), RawDataElement)  # the plane position, encoded once
    assert isinstance(first_frame.get_item(0x00089124), RawDataElement)  # the derivation from its source slice
    fast = encoded(built)
    monkeypatch.setattr(seg, "_PackedSegmentation", _Unaided)
    monkeypatch.setattr(seg, "ready_to_write", lambda dataset: None)
    unaided = encoded(seg.build_segmentation(result, sources, algorithm, CREATED))

    assert len(fast) == len(unaided)
    assert fast == unaided
