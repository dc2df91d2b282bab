"""Fitness for the QIBA profile: kernel names, the flags from an acquisition, the parenchyma's noise."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipelines.lung_density.fitness import fitness_flags, kernel_is_sharp, parenchymal_noise_hu
from dicom_node.pipelines.lung_density.manifest import Acquisition
from dicom_node.pipelines.lung_density.settings import QibaRules

RULES = QibaRules()


@pytest.mark.parametrize(
    ("kernel", "sharp"),
    [
        ("B70f", True), ("B40f", False), ("B30f", False), ("Br64d\\3", True), ("I50f\\2", True), ("D40s", False),
        ("FC51", True), ("FC10", False), ("STANDARD", False), ("LUNG", True), ("BONEPLUS", True), ("YB", True),
        ("B", False), ("", None), ("MYSTERY", None),
    ],
)
def test_kernel_names_of_each_vendor(kernel: str, sharp: bool | None):
    assert kernel_is_sharp(kernel, RULES) is sharp


def acquisition(**changes: object) -> Acquisition:
    fit = {"kernel": "B30f", "slice_thickness_mm": 1.0, "thickness_source": "SliceThickness (0018,0050)",
           "contrast_agent": "", "noise_hu": 20.0, "parenchyma_median_hu": -860.0}
    return Acquisition.model_validate({**fit, **changes})


def test_a_fit_acquisition_raises_no_flag():
    assert fitness_flags(acquisition(), RULES, -950) == ()


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"slice_thickness_mm": 2.0}, "QIBATHICK"),
        ({"kernel": "B70f"}, "QIBAKERNEL"),
        ({"noise_hu": 58.0}, "QIBANOISE"),
        ({"contrast_agent": "Iomeron 350"}, "QIBACONTRAST"),
    ],
)
def test_each_condition_outside_the_profile_raises_its_flag(changes: dict[str, object], code: str):
    flags = fitness_flags(acquisition(**changes), RULES, -950)
    assert [flag.code for flag in flags] == [code]
    assert flags[0].reason and flags[0].title


def test_the_noise_flag_says_how_much_normal_lung_noise_alone_pushes_below_the_threshold():
    (flag,) = fitness_flags(acquisition(noise_hu=45.0, parenchyma_median_hu=-860.0), RULES, -950)
    assert "about 2.3% of normal lung below -950 HU" in flag.reason  # P(N(-860, 45) < -950) = 2.28 %


def test_parenchymal_noise_reads_white_noise_in_the_lung_and_not_its_rim():
    rng = np.random.default_rng(0)
    labels = np.zeros((12, 120, 120), dtype=np.uint8)
    labels[:, 10:110, 10:60] = 1
    labels[:, 10:110, 62:110] = 2
    hu = np.full(labels.shape, 40.0, dtype=np.float32)  # soft tissue around the lungs
    hu[labels > 0] = -860.0
    hu += rng.normal(0.0, 25.0, hu.shape)
    noise, median = parenchymal_noise_hu(np.rint(hu).astype(np.int16), labels, (2.0, 0.7, 0.7))
    assert noise == pytest.approx(25.0, rel=0.1)
    assert median == pytest.approx(-860.0, abs=3.0)
