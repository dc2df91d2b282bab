"""Slow: kernel, section-thickness and calibration variants of P001, normal001 and the two LIDC scans through the whole
pipeline (bench/harmonisation prints the kernel variants' figures, with harmonisation off beside them)."""

from __future__ import annotations

from functools import cache

import pytest

from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.pipeline import analyse_volume
from dicom_node.pipeline.settings import FitnessRules
from dicom_node.pipeline.volume import CtVolume, load_series
from tests.pipeline.conftest import DATA, real_series
from tests.validation.kernel_variants import offset, thicker, variants
from tests.validation.lidc import opacity_outside_nodules_ml, readers_nodules

pytestmark = pytest.mark.slow


def analysed(volume):
    return analyse_volume(volume, EmbeddedLungSegmenter(), EmbeddedOpacityBaseline())


@cache
def p001() -> CtVolume:
    return load_series(real_series("covid-ct-md/P001"))


@cache
def p001_po() -> float:
    """P001's PO as it came: the reference of every P001 variant here, run once per session."""
    return analysed(p001()).measurements.opacity_percent["total"]


def test_p001_kernel_variants_keep_po_within_15_percent():
    volume, original = p001(), p001_po()
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


def test_sections_up_to_the_validated_thickness_keep_p001_within_15_percent_and_normal001_at_most_one_ml():
    """Unflagged thicknesses (`FitnessRules.max_slice_thickness_mm`, 3 mm) of the 2 mm scans; thicker is flagged."""
    limit = FitnessRules().max_slice_thickness_mm
    normal, original = load_series(real_series("covid-ct-md/normal001")), p001_po()
    for thickness in (2.5, limit):
        po = analysed(thicker(p001(), thickness)).measurements.opacity_percent["total"]
        ml = analysed(thicker(normal, thickness)).measurements.opacity_volume_ml["total"]
        print(f"\n{thickness:g} mm sections: P001 PO {po:.2f}% (original {original:.2f}%), normal001 {ml:.2f} mL")
        assert po == pytest.approx(original, rel=0.15) and ml <= 1.0, thickness


def lidc_outside_nodules_ml(name: str, section_mm: float | None = None, offset_hu: int = 0) -> float:
    """The opacity outside the readers' nodules of an LIDC scan, as it came, in thicker sections or calibrated
    `offset_hu` away."""
    volume = load_series(real_series(f"lidc-idri/{name}"))
    variant = volume if section_mm is None else thicker(volume, section_mm)
    result = analysed(offset(variant, offset_hu) if offset_hu else variant)
    nodules = readers_nodules(DATA / "lidc-idri" / f"{name}-nodules.xml", volume)
    assert nodules.sum() * volume.voxel_volume_ml > 1.0  # the readers' nodules were found in the XML
    outside = opacity_outside_nodules_ml(result.opacity_mask, nodules, volume.spacing)
    print(f"\n{name} ({section_mm or 'as it came'}, {offset_hu:+d} HU): {outside:.1f} mL outside the nodules, {result.measurements.opacity_volume_ml['total']:.1f} mL in all")
    return outside


@pytest.mark.parametrize("name", ["LIDC-IDRI-0001", "LIDC-IDRI-0002"])
def test_lidc_opacity_outside_the_readers_nodules_is_at_most_one_ml(name: str):
    assert lidc_outside_nodules_ml(name) <= 1.0


@pytest.mark.parametrize("offset_hu", [-5, 5])
def test_a_calibration_a_few_hu_off_keeps_lidc_0002_and_normal001_at_most_one_ml_and_p001_within_15_percent(offset_hu: int):
    """Within the ACR water tolerance (+/- 7 HU). Before the hazy seeds left out vessel knots and the airway tracker
    followed overlap only, LIDC-0002 read 4.2-4.7 mL outside its nodules from +0.5 HU on and 1.4 mL from -2 HU
    (model grid; docs/validation.md, 'Calibration offsets')."""
    assert lidc_outside_nodules_ml("LIDC-IDRI-0002", offset_hu=offset_hu) <= 1.0
    normal = load_series(real_series("covid-ct-md/normal001"))
    ml = analysed(offset(normal, offset_hu)).measurements.opacity_volume_ml["total"]
    po, original = analysed(offset(p001(), offset_hu)).measurements.opacity_percent["total"], p001_po()
    print(f"\n{offset_hu:+d} HU: normal001 {ml:.2f} mL, P001 PO {po:.2f}% (original {original:.2f}%)")
    assert ml <= 1.0 and po == pytest.approx(original, rel=0.15)


@pytest.mark.xfail(strict=True, reason="docs/validation.md 'Section thickness': in 2 mm sections (the calibration scans' own) "
                   "focal seeds at the left base and the right anterior junction read about 2.5 mL outside the nodules (5.8 before "
                   "the vessel-knot stop)")
def test_lidc_0002_in_2_mm_sections_stays_at_most_one_ml_outside_the_nodules():
    assert lidc_outside_nodules_ml("LIDC-IDRI-0002", 2.0) <= 1.0
