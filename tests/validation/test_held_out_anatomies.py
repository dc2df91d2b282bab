"""Slow: kernel variants of P001 and normal001 and the two LIDC scans through the whole pipeline (bench/harmonisation
prints the same figures, with harmonisation off beside them)."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.pipeline import analyse_volume
from dicom_node.pipeline.volume import load_series
from tests.pipeline.conftest import DATA, real_series
from tests.validation.kernel_variants import variants
from tests.validation.lidc import nodule_mask, opacity_outside_nodules_ml, read_nodule_outlines

pytestmark = pytest.mark.slow


def analysed(volume):
    return analyse_volume(volume, EmbeddedLungSegmenter(), EmbeddedOpacityBaseline())


def test_p001_kernel_variants_keep_po_within_15_percent():
    volume = load_series(real_series("covid-ct-md/P001"))
    original = analysed(volume).measurements.opacity_percent["total"]
    for name, variant in variants(volume):
        po = analysed(variant).measurements.opacity_percent["total"]
        print(f"\nP001 {name}: PO {po:.2f}% (original {original:.2f}%)")
        assert po == pytest.approx(original, rel=0.15), name


def test_normal001_kernel_variants_stay_at_most_one_ml():
    volume = load_series(real_series("covid-ct-md/normal001"))
    for name, variant in variants(volume):
        ml = analysed(variant).measurements.opacity_volume_ml["total"]
        print(f"\nnormal001 {name}: {ml:.2f} mL")
        assert ml <= 1.0, name


@pytest.mark.parametrize("name", ["LIDC-IDRI-0001", "LIDC-IDRI-0002"])
def test_lidc_opacity_outside_the_readers_nodules_is_at_most_one_ml(name: str):
    result = analysed(load_series(real_series(f"lidc-idri/{name}")))
    volume = result.volume
    z_mm = volume.origin[0] + np.arange(volume.hu.shape[0]) * volume.spacing[0]
    outlines = read_nodule_outlines(DATA / "lidc-idri" / f"{name}-nodules.xml")
    nodules = nodule_mask(outlines, volume.hu.shape, z_mm, volume.spacing[1])
    assert nodules.sum() * volume.voxel_volume_ml > 1.0  # the readers' nodules were found in the XML
    outside = opacity_outside_nodules_ml(result.opacity_mask, nodules, volume.spacing)
    print(f"\n{name}: {outside:.1f} mL outside the nodules, {result.measurements.opacity_volume_ml['total']:.1f} mL in all")
    assert outside <= 1.0
