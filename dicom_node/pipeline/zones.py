"""Lung zones: upper, middle and lower thirds of each lung's head-feet extent (not lobes, which the node does not
segment). Shared by the COVID-19 severity score and the lung-density figures per zone."""

from __future__ import annotations

import numpy as np

from dicom_node.pipeline.lungs import LEFT, RIGHT

ZONES = ("upper", "middle", "lower")


def lung_zones(labels: np.ndarray) -> np.ndarray:
    """Zone index per voxel (0 upper, 1 middle, 2 lower, -1 outside the lungs) by thirds of each lung's z extent;
    `labels` (1 right, 2 left lung) on a grid whose z index grows towards the head."""
    zones = np.full(labels.shape, -1, dtype=np.int8)
    z = np.arange(labels.shape[0])
    for label in (RIGHT, LEFT):
        lung = labels == label
        slices = np.flatnonzero(lung.any(axis=(1, 2)))
        if not len(slices):
            continue
        low, high = slices[0], slices[-1] + 1
        third_from_feet = np.clip((z - low) * 3 // (high - low), 0, 2)
        zone_of_z = (2 - third_from_feet).astype(np.int8)
        zones[lung] = np.broadcast_to(zone_of_z[:, None, None], labels.shape)[lung]
    return zones
