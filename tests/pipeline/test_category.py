"""The RSNA category and the shape descriptors behind it, on masks with known answers and on the phantoms."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipelines.covid19.category import DETECTION_FLOOR_ML, RsnaAssessment, RsnaCategory, rsna_category
from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipelines.covid19.opacity import measure_opacity
from dicom_node.pipeline.pattern import describe_opacity
from tests.pipeline.test_pattern import SPACING, box_lungs

VOXEL_ML = float(np.prod(SPACING)) / 1000.0


def ball(shape: tuple[int, int, int], centre: tuple[int, int, int], radius_mm: float) -> np.ndarray:
    z, y, x = np.indices(shape)
    return sum(((a - c) * s) ** 2 for a, c, s in zip((z, y, x), centre, SPACING)) <= radius_mm**2


def assess(opacity: np.ndarray, high: np.ndarray, labels: np.ndarray) -> RsnaAssessment:
    pattern = describe_opacity(opacity, high, labels, SPACING)
    return rsna_category(pattern, measure_opacity(opacity, high, labels, VOXEL_ML).opacity_volume_ml)


def test_shape_descriptors_tell_a_ball_from_a_streak_and_a_mass_from_ground_glass():
    labels = box_lungs()
    opacity = ball(labels.shape, (35, 35, 35), 15.0)  # a 3 cm ground-glass ball, right lung: rounded
    opacity[30:33, 20:50, 110:113] = True  # a thin 5 cm streak in the left lung: not rounded
    pattern = describe_opacity(opacity, np.zeros_like(opacity), labels, SPACING)
    assert pattern.lesion_count == 2 and pattern.rounded_lesion_count == 1 and pattern.mass_like_lesion_count == 0
    solid = ball(labels.shape, (35, 35, 35), 15.0)
    pattern = describe_opacity(opacity, solid, labels, SPACING)  # the same ball, now consolidation
    assert pattern.rounded_lesion_count == 0 and pattern.mass_like_lesion_count == 1
    assert pattern.largest_mass_like_ml == pytest.approx(solid.sum() * VOXEL_ML)
    assert 45 <= pattern.lung_peripheral_percent <= 75  # the block lungs' outer third by depth


def test_bilateral_peripheral_ground_glass_is_typical():
    labels = box_lungs()
    opacity = np.zeros(labels.shape, dtype=bool)
    opacity[10:40, 6:14, 6:60] = True  # subpleural bands in both lungs, about 32 mL each
    opacity[10:40, 6:14, 80:134] = True
    assessment = assess(opacity, np.zeros_like(opacity), labels)
    assert assessment.category is RsnaCategory.TYPICAL
    assert all(assessment.met(code) for code in ("OPACITY", "BILATERAL", "PERIPHERAL", "GROUNDGLASS"))
    assert not assessment.met("SOLITARYMASS")


def test_multifocal_rounded_ground_glass_is_typical_even_central_and_one_sided():
    labels = box_lungs()
    opacity = ball(labels.shape, (18, 35, 35), 17.0) | ball(labels.shape, (52, 35, 35), 17.0)  # 2 x 20 mL
    assessment = assess(opacity, np.zeros_like(opacity), labels)
    assert not assessment.met("BILATERAL") and assessment.met("MULTIFOCAL") and assessment.met("ROUNDED")
    assert assessment.category is RsnaCategory.TYPICAL


def test_a_solid_mass_is_atypical_even_with_ground_glass_elsewhere():
    labels = box_lungs()
    mass = ball(labels.shape, (35, 35, 35), 16.0)
    opacity = mass.copy()
    opacity[10:40, 6:14, 80:134] = True  # peripheral ground glass in the other lung
    assessment = assess(opacity, mass, labels)
    assert assessment.met("SOLITARYMASS") and assessment.category is RsnaCategory.ATYPICAL
    assert assessment.rule == "a solitary solid mass-like lesion"


def test_isolated_consolidation_in_one_lung_is_atypical():
    labels = box_lungs()
    opacity = np.zeros(labels.shape, dtype=bool)
    opacity[5:35, 5:60, 5:20] = True  # a segment-like slab of consolidation (flat: not mass-like)
    assessment = assess(opacity, opacity, labels)
    assert assessment.met("ISOLATEDCONS") and not assessment.met("SOLITARYMASS")
    assert assessment.category is RsnaCategory.ATYPICAL


def test_one_central_irregular_patch_is_indeterminate_and_little_opacity_is_negative():
    labels = box_lungs()
    opacity = np.zeros(labels.shape, dtype=bool)
    opacity[20:50, 28:34, 15:55] = True  # a central, flat ground-glass patch in one lung, 46 mL
    assessment = assess(opacity, np.zeros_like(opacity), labels)
    assert assessment.category is RsnaCategory.INDETERMINATE
    small = ball(labels.shape, (35, 35, 35), 8.0)  # 2 mL: below the floor
    assert small.sum() * VOXEL_ML < DETECTION_FLOOR_ML
    assessment = assess(small, np.zeros_like(small), labels)
    assert assessment.category is RsnaCategory.NEGATIVE and not assessment.met("OPACITY")


def test_the_assessment_round_trips_through_its_dictionary():
    labels = box_lungs()
    opacity = ball(labels.shape, (35, 35, 35), 20.0)  # a 4 cm mass, 34 mL
    assessment = assess(opacity, opacity, labels)
    assert RsnaAssessment.from_dict(assessment.as_dict()) == assessment
    assert assessment.as_dict()["title"] == "Atypical appearance"


def test_the_phantoms_categories(clear_result: PipelineResult, covid_result: PipelineResult):
    """The clear phantom has no opacity; the diseased one bilateral, subpleural ground glass and consolidation.

    It read atypical while the tubular test dropped its subpleural consolidations: the one left was a solitary mass."""
    assert clear_result.category is not None and clear_result.category.category is RsnaCategory.NEGATIVE
    assert covid_result.category is not None and covid_result.category.category is RsnaCategory.TYPICAL
