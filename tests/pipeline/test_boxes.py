"""Bounding boxes of masks: the same boxes as the voxels' coordinates give, with margins clipped to the array."""

from __future__ import annotations

import numpy as np

from dicom_node.pipeline.boxes import bounding_box, label_boxes, widened


def test_the_box_spans_the_first_to_the_last_set_voxel_on_each_axis() -> None:
    rng = np.random.default_rng(3)
    mask = np.zeros((20, 30, 40), dtype=bool)
    mask[4:9, 10:25, 7:8] = rng.random((5, 15, 1)) > 0.3
    mask[15, 2, 33] = True
    found = np.argwhere(mask)

    box = bounding_box(mask)

    assert box == tuple(slice(int(a), int(b) + 1) for a, b in zip(found.min(axis=0), found.max(axis=0)))
    assert bounding_box(mask.astype(np.uint8) * 2) == box  # any non-zero value counts


def test_an_empty_mask_and_an_absent_label_have_no_box() -> None:
    labels = np.zeros((5, 6, 7), dtype=np.uint8)
    labels[1:3, 2:4, 5:7] = 2

    assert bounding_box(np.zeros((5, 6, 7), dtype=bool)) is None
    assert label_boxes(labels, 2) == [None, (slice(1, 3), slice(2, 4), slice(5, 7))]


def test_a_widened_box_stops_at_the_array_edges() -> None:
    box = (slice(1, 3), slice(2, 4), slice(5, 7))

    assert widened(box, 2, (5, 6, 7)) == (slice(0, 5), slice(0, 6), slice(3, 7))
    assert widened(box, (0, 1, 3), (5, 6, 7)) == (slice(1, 3), slice(1, 5), slice(2, 7))
