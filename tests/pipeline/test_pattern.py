"""The opacity pattern descriptors on masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipeline.lungs import LEFT, RIGHT
from dicom_node.pipeline.pattern import describe_opacity, lung_zones, peripheral_region, severity_of

SPACING = (2.5, 1.6, 1.6)


def box_lungs() -> np.ndarray:
    """Two 60 x 60 x 60-voxel block lungs (150 x 96 x 96 mm), right at low x, z towards the head."""
    labels = np.zeros((70, 70, 140), dtype=np.uint8)
    labels[5:65, 5:65, 5:65] = RIGHT
    labels[5:65, 5:65, 75:135] = LEFT
    return labels


@pytest.mark.parametrize(
    ("percent", "score"), [(0.0, 0), (0.01, 1), (4.99, 1), (5.0, 2), (25.0, 2), (25.1, 3), (50.0, 3), (60.0, 4), (75.1, 5), (100.0, 5)]
)
def test_zone_score_follows_the_published_bounds(percent: float, score: int):
    assert severity_of(percent) == score


def test_zones_are_thirds_of_each_lung_with_the_upper_zone_towards_the_head():
    labels = box_lungs()
    zones = lung_zones(labels)
    assert (zones[labels == 0] == -1).all()
    assert (zones[45:65][labels[45:65] > 0] == 0).all()  # highest z: upper
    assert (zones[25:45][labels[25:45] > 0] == 1).all()
    assert (zones[5:25][labels[5:25] > 0] == 2).all()


def test_peripheral_region_is_the_outer_third_by_depth():
    labels = box_lungs()
    peripheral = peripheral_region(labels, SPACING)
    assert not peripheral[labels == 0].any()
    assert peripheral[35, 6, 35] and peripheral[35, 35, 6]  # next to the pleura
    assert not peripheral[35, 35, 35] and not peripheral[35, 35, 105]  # the centre of each lung


def test_descriptors_of_two_known_lesions():
    labels = box_lungs()
    opacity = np.zeros(labels.shape, dtype=bool)
    opacity[5:25, 5:12, 5:65] = True  # right lower zone, within 11 mm of the pleura: peripheral
    opacity[50:60, 30:40, 100:110] = True  # left upper zone, central
    high = np.zeros_like(opacity)
    high[50:60, 30:40, 100:110] = True  # the left lesion is consolidation
    pattern = describe_opacity(opacity, high, labels, SPACING)
    voxel_ml = float(np.prod(SPACING)) / 1000.0
    right_lower, left_upper = 20 * 7 * 60, 10 * 10 * 10
    total = right_lower + left_upper
    assert pattern.bilateral
    assert pattern.lesion_count == 2
    assert pattern.largest_lesion_ml == pytest.approx(right_lower * voxel_ml)
    assert pattern.zone_distribution_percent["lower"] == pytest.approx(100.0 * right_lower / total)
    assert pattern.zone_distribution_percent["upper"] == pytest.approx(100.0 * left_upper / total)
    assert pattern.consolidation_percent == pytest.approx(100.0 * left_upper / total)
    assert pattern.ground_glass_percent == pytest.approx(100.0 * right_lower / total)
    assert pattern.peripheral_percent == pytest.approx(100.0 * right_lower / total, abs=3.0)
    zone_voxels = 20 * 60 * 60
    assert pattern.zone_involvement_percent["right lower"] == pytest.approx(100.0 * right_lower / zone_voxels)  # 11.7%
    assert pattern.zone_scores == {
        "right upper": 0, "right middle": 0, "right lower": 2, "left upper": 1, "left middle": 0, "left lower": 0
    }
    assert pattern.zone_based_severity_score == 3


def test_one_sided_or_no_opacity():
    labels = box_lungs()
    opacity = np.zeros(labels.shape, dtype=bool)
    assert describe_opacity(opacity, opacity, labels, SPACING).zone_based_severity_score == 0
    opacity[30:40, 30:40, 30:40] = True
    pattern = describe_opacity(opacity, np.zeros_like(opacity), labels, SPACING)
    assert not pattern.bilateral and pattern.lesion_count == 1 and pattern.ground_glass_percent == 100.0
