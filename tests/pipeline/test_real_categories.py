"""The headline on real chest CT: the RSNA category of each shared case, and the fitness flags it raises."""

from __future__ import annotations

import pytest

from dicom_node.pipelines.covid19.category import RsnaCategory
from dicom_node.pipelines.covid19.pipeline import PipelineResult
from tests.pipeline.conftest import real_series, run_embedded


@pytest.fixture(scope="module", params=["LIDC-IDRI-0001", "LIDC-IDRI-0002"])
def lidc_result(request: pytest.FixtureRequest) -> PipelineResult:
    """Chest CTs with lung nodules and no pneumonia (GE, STANDARD kernel): never seen while the rules were set."""
    return run_embedded(real_series(f"lidc-idri/{request.param}"))


def categories(result: PipelineResult) -> tuple[RsnaCategory, dict[str, bool]]:
    assert result.category is not None
    return result.category.category, {c.code: c.met for c in result.category.criteria}


def test_p001_is_typical_bilateral_peripheral_ground_glass(p001_result: PipelineResult):
    category, met = categories(p001_result)
    assert category is RsnaCategory.TYPICAL
    assert met["BILATERAL"] and met["PERIPHERAL"] and met["GROUNDGLASS"] and not met["SOLITARYMASS"]
    # 2 mm slices without contrast; the lung bases run on below the last slice (2.3% of the largest cross-section).
    assert [flag.code for flag in p001_result.fitness] == ["COVERAGE"]


def test_normal001_is_negative_for_pneumonia_without_a_flag(normal001_result: PipelineResult):
    assert categories(normal001_result)[0] is RsnaCategory.NEGATIVE
    assert normal001_result.fitness == ()


@pytest.mark.slow  # two more real scans: 5-30 s each on the 2-core machine, depending on its load
def test_the_lidc_scans_are_negative_for_pneumonia(lidc_result: PipelineResult):
    """Their nodules and the node's false positives stay under the detection floor (4.8 and 11.1 mL today, 30 mL the floor)."""
    category, met = categories(lidc_result)
    assert category is RsnaCategory.NEGATIVE and not met["OPACITY"]
    if lidc_result.volume.spacing[0] == 2.5:  # LIDC-IDRI-0001: IV contrast (header and image agree)
        assert lidc_result.volume.source_headers[0].ContrastBolusAgent
        assert "CONTRAST" in {flag.code for flag in lidc_result.fitness}


@pytest.mark.parametrize("kernel", ["b70f", "b40f"])
def test_a0002_tumour_is_atypical_and_flagged_for_its_8_mm_slices_and_the_mediastinum(kernel: str, request: pytest.FixtureRequest):
    result: PipelineResult = request.getfixturevalue(f"a0002_{kernel}_result")
    category, met = categories(result)
    assert category is RsnaCategory.ATYPICAL and met["SOLITARYMASS"]
    assert result.pattern is not None and result.pattern.mass_like_lesion_count == 1
    # the right lower-lobe mass, B70f / B40f: 54 / 53 mL at 0.3.4 (B70f 58 before the growth stop, 61 before the
    # downhill growth, 76 when this test was written); the lung mask cuts its mediastinal half off with a straight
    # line (docs/validation.md, "Known failure modes")
    assert 50 <= result.pattern.largest_mass_like_ml <= 120
    thick = next(flag for flag in result.fitness if flag.code == "THICKSLICE")
    assert thick.measured == 8.0 and thick.limit == 3.0
    against = next(flag for flag in result.fitness if flag.code == "MEDIASTINUM")  # the mass's cut face: 8.7-8.8 cm2
    assert against.measured > 2 * against.limit
