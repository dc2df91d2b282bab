"""Slow: the phantom suite, 10 anatomies x soft and sharp kernels (figures and worst case in docs/validation.md)."""

from __future__ import annotations

import pytest

from tests.validation.phantom_suite import KERNELS, SEEDS, score

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores():
    return {(seed, kernel): score(seed, kernel) for seed in SEEDS for kernel in KERNELS}


def test_soft_and_sharp_kernels_give_the_same_po_for_every_anatomy(scores):
    for seed in SEEDS:
        soft, sharp = scores[seed, "soft"].po, scores[seed, "sharp"].po
        print(f"\nseed {seed}: PO soft {soft:.2f}%, sharp {sharp:.2f}%")
        assert soft == pytest.approx(sharp, rel=0.10), seed


def test_every_anatomy_and_kernel_leaves_the_vessels_out(scores):
    """Fewer than 5% of the vessel voxels counted as opacity (0-4.8% measured since the growth stops at thin bright
    structures; 0-8.6% before: a soft kernel's blurred vessels touching a lesion were grown into)."""
    for (seed, kernel), s in scores.items():
        assert s.vessel_share < 0.05, (seed, kernel, s.vessel_share)


@pytest.mark.xfail(
    strict=True,
    reason="Dice 0.82-0.95 (seeds 1, 8 soft and 9 soft below 0.85: the classical lung mask leaves 11-14% of their "
    "opacity out, between the lungs, at the apex and in the basal recess) measured (docs/validation.md)",
)
def test_every_anatomy_and_kernel_finds_the_opacity(scores):
    for (seed, kernel), s in scores.items():
        assert s.opacity_dice >= 0.85, (seed, kernel)


def test_every_run_the_lung_mask_fails_says_so(scores):
    """Where the end-to-end Dice falls below 0.85 (consolidation against the mediastinum cut off by the lung mask),
    the result carries the MEDIASTINUM fitness flag: its figures are marked, not silently low."""
    for (seed, kernel), s in scores.items():
        print(f"\nseed {seed} {kernel}: Dice {s.opacity_dice:.3f}, flags {', '.join(s.flags)}")
        if s.opacity_dice < 0.85:
            assert "MEDIASTINUM" in s.flags, (seed, kernel)


def test_within_the_lung_mask_every_anatomy_and_kernel_finds_the_opacity(scores):
    """The opacity method apart from the lung mask: against the truth inside the node's own lung mask (0.886-0.951
    measured). What the end-to-end Dice loses beyond this is consolidation the classical lung mask leaves out."""
    for (seed, kernel), s in scores.items():
        print(f"\nseed {seed} {kernel}: Dice {s.opacity_dice:.3f}, in the lung mask {s.dice_in_lung_mask:.3f}, "
              f"{100 * s.truth_outside_lung_mask:.0f}% of the opacity outside it, vessels {100 * s.vessel_share:.1f}%")
        assert s.dice_in_lung_mask >= 0.85, (seed, kernel)
