"""Phantoms with emphysema-like blobs of known attenuation through the whole pipeline (DICOM files in).

Soft kernel: RA-950 within 1 percentage point of the truth (the share of lung voxels in blobs below -950 HU),
every lung and zone figure where the blobs are. Sharp kernel: the figure is inflated and the result says the scan
is unfit for densitometry (the kernel named in the header, the noise measured in the image), never silently.
The blobs cover 2-20 % of the lungs; blobs between -950 and -920 HU are not low attenuation and must not count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lung_density.conftest import Case, processed
from tests.lung_density.emphysema_phantom import make_emphysema_phantom


def test_soft_kernel_ra950_within_one_point_of_the_truth_per_lung_and_in_total(soft: Case):
    phantom, result = soft.phantom, soft.result
    truth = phantom.truth_ra950
    assert 5.0 < truth["total"] < 15.0  # blobs over 20 % of the lungs, about half of them below -950 HU
    for region in ("right", "left", "total"):
        assert result.density.lungs[region].ra950_percent == pytest.approx(truth[region], abs=1.0), region
    assert result.fit, [flag.code for flag in result.fitness]


def test_soft_kernel_zones_within_one_point_and_the_upper_zone_holds_most(soft: Case):
    phantom, result = soft.phantom, soft.result
    truth = phantom.truth_zone_ra950
    for zone, figures in result.density.zones.items():
        assert figures.ra950_percent == pytest.approx(truth[zone], abs=1.0), zone
    assert max(truth, key=truth.get) == "upper"  # two thirds of the blobs are placed in each lung's upper half


def test_soft_kernel_lung_volume_and_low_attenuation_mask_match_the_phantom(soft: Case):
    phantom, result = soft.phantom, soft.result
    voxel_ml = result.volume.voxel_volume_ml
    true_ml = float((phantom.phantom.lungs > 0).sum()) * voxel_ml
    assert result.density.total.volume_ml == pytest.approx(true_ml, rel=0.03)
    found, true = result.low_attenuation, phantom.low_attenuation
    assert 2.0 * float((found & true).sum()) / float(found.sum() + true.sum()) > 0.85  # Dice of the SEG's segment


def test_sharp_kernel_inflates_ra950_and_the_result_says_it_is_unfit(soft: Case, sharp: Case):
    phantom, result = sharp.phantom, sharp.result
    assert result.density.total.ra950_percent > phantom.truth_ra950["total"] + 1.0
    assert result.density.total.ra950_percent > soft.result.density.total.ra950_percent + 1.0
    assert result.density.total.perc15_hu < soft.result.density.total.perc15_hu
    assert not result.fit
    codes = {flag.code for flag in result.fitness}
    assert {"QIBAKERNEL", "QIBANOISE"} <= codes, codes


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.2])
@pytest.mark.parametrize("seed", [5, 6])
def test_soft_kernel_within_one_point_from_2_to_20_percent_blobs(fraction: float, seed: int, tmp_path: Path):
    phantom = make_emphysema_phantom((512, 512, 80), fraction, kernel="soft", seed=seed)
    result = processed(phantom, tmp_path)
    assert result.density.total.ra950_percent == pytest.approx(phantom.truth_ra950["total"], abs=1.0)
    assert result.fit
