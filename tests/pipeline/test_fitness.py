"""Fitness flags: each check raises its flag on a phantom made unfit in that one way, and stays silent on the clean one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_node.pipelines.covid19.pipeline import PipelineResult
from dicom_node.pipeline.fitness import (
    FitnessFlag,
    assess_fitness,
    contrast_flag,
    coverage_flag,
    interpolated_slices_flag,
    mediastinal_contact_flag,
    slice_thickness_flag,
    streak_flag,
)
from phantoms.chest import Phantom, make_phantom
from dicom_node.pipeline.settings import FitnessRules
from dicom_node.pipeline.volume import CtVolume

RULES = FitnessRules()
ARTERY_RADIUS_MM = 10.0  # a lobar pulmonary artery: wide enough to have a core on any grid


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    """Thin slices (2.5 mm) covering both lungs, no lesions."""
    return make_phantom((160, 160, 120), 0.0, seed=3)


def positions_mm(phantom: Phantom) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each voxel's (z, y, x) position in mm (LPS), as arrays of the phantom's shape."""
    index = np.indices(phantom.hu.shape, dtype=np.float32)
    return tuple(o + s * i for o, s, i in zip(phantom.origin, phantom.spacing, index))  # type: ignore[return-value]


def with_artery(phantom: Phantom, hu: float) -> np.ndarray:
    """The phantom's CT with a 2 cm artery of `hu` running head-feet through the right lung's medial part."""
    ct = phantom.hu.astype(np.float32)
    _, py, px = positions_mm(phantom)
    artery = ((px + 55.0) ** 2 + (py - 10.0) ** 2 <= ARTERY_RADIUS_MM**2) & (phantom.lungs == 1)
    ct[artery] = hu
    return ct


def volume_of(phantom: Phantom, thickness: str | None, filled: int = 0) -> CtVolume:
    header = Dataset()
    if thickness is not None:
        header.SliceThickness = thickness
    n = phantom.hu.shape[0]
    return CtVolume(
        hu=phantom.hu,
        spacing=phantom.spacing,
        origin=phantom.origin,
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        series_instance_uid="1.2.3",
        study_instance_uid="1.2",
        frame_of_reference_uid="1.2.4",
        source_files=(None,) * n,
        sop_instance_uids=tuple(None if i < filled else f"1.2.3.{i}" for i in range(n)),
        source_headers=(header,) + (None,) * (n - 1),
    )


def test_a_clean_thin_slice_phantom_raises_no_flag(phantom: Phantom):
    ct = with_artery(phantom, 40.0)
    assert assess_fitness(volume_of(phantom, "2.5"), ct, phantom.lungs, RULES) == []


def test_thick_slices_are_flagged_from_the_header_or_else_the_spacing(phantom: Phantom):
    flag = slice_thickness_flag(volume_of(phantom, "8"), RULES)
    assert flag is not None and flag.code == "THICKSLICE" and flag.measured == 8.0 and flag.limit == 3.0
    assert "SliceThickness" in flag.reason
    assert slice_thickness_flag(volume_of(phantom, "3"), RULES) is None  # the limit itself is validated
    spaced = replace(volume_of(phantom, None), spacing=(5.0, *phantom.spacing[1:]))
    flag = slice_thickness_flag(spaced, RULES)
    assert flag is not None and flag.measured == 5.0 and "slice spacing" in flag.reason


def test_contrast_in_the_pulmonary_arteries_is_flagged_and_unenhanced_blood_is_not(phantom: Phantom):
    assert contrast_flag(with_artery(phantom, 40.0), phantom.lungs, RULES) is None
    flag = contrast_flag(with_artery(phantom, 300.0), phantom.lungs, RULES)
    assert flag is not None and flag.code == "CONTRAST" and flag.measured == pytest.approx(300.0, abs=30)
    assert contrast_flag(with_artery(phantom, 130.0), phantom.lungs, RULES) is not None  # a venous-phase enhancement


def test_lungs_cut_by_the_first_or_last_slice_are_flagged(phantom: Phantom):
    assert coverage_flag(phantom.lungs, RULES) is None
    lung_slices = np.flatnonzero(phantom.lungs.any(axis=(1, 2)))
    middle = (lung_slices[0] + lung_slices[-1]) // 2
    for cut, end in ((phantom.lungs[middle - 20 :], "lowest"), (phantom.lungs[: middle + 20], "highest")):
        flag = coverage_flag(cut, RULES)
        assert flag is not None and flag.code == "COVERAGE" and flag.measured > 50 and end in flag.reason


def test_dark_streaks_through_the_lungs_are_flagged(phantom: Phantom):
    ct = phantom.hu.astype(np.float32)
    assert streak_flag(ct, phantom.lungs, RULES) is None
    streaked = ct.copy()
    streaked[:, ::16, :] -= 400.0  # bands of photon starvation, 4 rows of every 64
    streaked[:, 1::16, :] -= 400.0
    flag = streak_flag(streaked, phantom.lungs, RULES)
    assert flag is not None and flag.code == "STREAKS" and flag.measured > RULES.max_dark_streak_percent


def test_interpolated_slices_are_flagged(phantom: Phantom):
    assert interpolated_slices_flag(volume_of(phantom, "2.5")) is None
    flag = interpolated_slices_flag(volume_of(phantom, "2.5", filled=2))
    assert flag is not None and flag.measured == 2.0


def test_opacity_against_the_mediastinum_is_flagged_and_elsewhere_is_not(phantom: Phantom):
    """A 3 x 3 cm face of opacity on the right lung's medial border (9 cm2, the limit is 4) is flagged; the same block
    against the chest wall, or a 1 x 1 cm touch of the mediastinum, is not."""
    pz, py, px = positions_mm(phantom)
    right = phantom.lungs == 1
    band = (np.abs(py - 5.0) < 15.0) & (np.abs(pz - 15.0) < 15.0)
    medial = right & band & (px > -40.0)
    flag = mediastinal_contact_flag(medial, phantom.lungs, phantom.spacing, RULES)
    assert flag is not None and flag.code == "MEDIASTINUM" and flag.unit == "cm2"
    assert flag.measured == pytest.approx(9.0, rel=0.15) and flag.limit == RULES.max_mediastinal_contact_cm2
    lateral = right & band & (px < -120.0)
    assert lateral.any() and mediastinal_contact_flag(lateral, phantom.lungs, phantom.spacing, RULES) is None
    touch = medial & (np.abs(py - 5.0) < 5.0) & (np.abs(pz - 15.0) < 5.0)
    assert touch.any() and mediastinal_contact_flag(touch, phantom.lungs, phantom.spacing, RULES) is None


def test_a_flag_validates_itself_and_round_trips():
    flag = FitnessFlag("THICKSLICE", "Slice thickness above the validated range", "8 mm slices", 8.0, 3.0, "mm")
    assert FitnessFlag.from_dict(flag.as_dict()) == flag
    low = FitnessFlag("LOWDOSE", "Very low dose", "CTDIvol 0.4 mGy", 0.4, 1.0, "mGy", above=False)
    assert FitnessFlag.from_dict(low.as_dict()) == low
    with pytest.raises(ValueError, match="not above"):
        FitnessFlag("THICKSLICE", "Slice thickness", "2 mm", 2.0, 3.0, "mm")
    with pytest.raises(ValueError, match="not below"):
        FitnessFlag("LOWDOSE", "Very low dose", "5 mGy", 5.0, 1.0, "mGy", above=False)
    with pytest.raises(ValueError, match="code"):
        FitnessFlag("thick slices", "Slice thickness", "8 mm", 8.0, 3.0, "mm")
    with pytest.raises(ValueError, match="reason"):
        FitnessFlag("THICKSLICE", "Slice thickness", " ", 8.0, 3.0, "mm")
    with pytest.raises(ValueError, match="finite"):
        FitnessFlag("THICKSLICE", "Slice thickness", "8 mm", float("nan"), 3.0, "mm")


def test_the_pipeline_result_carries_the_flags(clear_result: PipelineResult):
    """The small phantom series has 3.75 mm slices: the pipeline says so."""
    assert [flag.code for flag in clear_result.fitness] == ["THICKSLICE"]
    assert clear_result.fitness[0].measured == pytest.approx(3.75)
    assert "fitness" in clear_result.timings
