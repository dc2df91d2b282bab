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


@pytest.mark.xfail(strict=True, reason="Dice 0.796-0.941 and vessels 0-15.7% measured (docs/validation.md)")
def test_every_anatomy_and_kernel_finds_the_opacity_and_leaves_the_vessels_out(scores):
    for (seed, kernel), s in scores.items():
        assert s.opacity_dice >= 0.85 and s.vessel_share < 0.05, (seed, kernel)
