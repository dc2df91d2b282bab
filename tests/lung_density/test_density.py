"""The densitometry figures on volumes whose histogram is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipelines.lung_density.density import figures_of, low_attenuation_mask, measure_density


def two_lungs(shape: tuple[int, int, int] = (30, 20, 40)) -> np.ndarray:
    """Labels: right lung (1) in the low-x half, left lung (2) in the high-x half, a background frame around them."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[:, 2:-2, 2 : shape[2] // 2 - 1] = 1
    labels[:, 2:-2, shape[2] // 2 + 1 : -2] = 2
    return labels


def test_ra950_counts_voxels_strictly_below_the_threshold():
    labels = two_lungs()
    hu = np.full(labels.shape, -860, dtype=np.int16)
    right = np.flatnonzero(labels.ravel() == 1)
    hu.ravel()[right[:100]] = -951  # below
    hu.ravel()[right[100:300]] = -950  # at the threshold: not below
    hu[labels == 0] = -1000  # air outside the lungs is never counted
    density = measure_density(hu, labels, voxel_ml=0.5)
    n_right = int((labels == 1).sum())
    assert density.lungs["right"].ra950_percent == pytest.approx(100.0 * 100 / n_right)
    assert density.lungs["left"].ra950_percent == 0.0
    assert density.total.ra950_percent == pytest.approx(100.0 * 100 / int((labels > 0).sum()))
    assert density.total.volume_ml == pytest.approx(0.5 * int((labels > 0).sum()))
    assert int(low_attenuation_mask(hu, labels).sum()) == 100


def test_perc15_is_the_smallest_value_with_15_percent_at_or_below_it():
    histogram = np.zeros(201, dtype=np.int64)  # -1000 .. -800 HU
    histogram[[0, 50, 100, 200]] = [10, 4, 6, 80]  # 10 % at -1000, 14 % up to -950, 20 % up to -900
    figures = figures_of(histogram, -1000, 1.0, -950, 15.0)
    assert figures.perc15_hu == -900
    assert figures.ra950_percent == pytest.approx(10.0)
    assert figures.mean_hu == pytest.approx((10 * -1000 + 4 * -950 + 6 * -900 + 80 * -800) / 100)
    assert figures_of(histogram, -1000, 1.0, -950, 14.0).perc15_hu == -950


def test_a_uniform_ramp_gives_its_own_percentile_and_mean():
    labels = two_lungs()
    lung = np.flatnonzero(labels.ravel() > 0)
    hu = np.zeros(labels.shape, dtype=np.int16)
    values = np.linspace(-1000, -600, lung.size).round().astype(np.int16)
    hu.ravel()[lung] = np.random.default_rng(0).permutation(values)
    total = measure_density(hu, labels, 1.0).total
    assert total.perc15_hu == pytest.approx(np.percentile(values, 15), abs=1.0)
    assert total.mean_hu == pytest.approx(values.mean())
    assert total.ra950_percent == pytest.approx(100.0 * (values < -950).mean())


def test_zones_are_thirds_of_each_lung_from_the_head_and_follow_the_slice_order():
    labels = two_lungs((30, 20, 40))
    hu = np.full(labels.shape, -860, dtype=np.int16)
    hu[20:][labels[20:] > 0] = -990  # the highest third (z grows to the head): the upper zone
    head_first = measure_density(hu, labels, 1.0, head_first=True)
    assert head_first.zones["upper"].ra950_percent == 100.0
    assert head_first.zones["middle"].ra950_percent == head_first.zones["lower"].ra950_percent == 0.0
    feet_first = measure_density(hu, labels, 1.0, head_first=False)
    assert feet_first.zones["lower"].ra950_percent == 100.0
    assert feet_first.zones["upper"].ra950_percent == 0.0
    assert sum(z.voxels for z in head_first.zones.values()) == head_first.total.voxels


def test_regions_add_up_and_no_lungs_gives_empty_figures():
    labels = two_lungs()
    hu = np.random.default_rng(1).integers(-1024, -500, labels.shape).astype(np.int16)
    density = measure_density(hu, labels, 0.7)
    assert density.lungs["right"].voxels + density.lungs["left"].voxels == density.total.voxels
    below = sum(f.ra950_percent * f.voxels for f in density.zones.values()) / density.total.voxels
    assert below == pytest.approx(density.total.ra950_percent)
    empty = measure_density(hu, np.zeros_like(labels), 0.7)
    assert empty.total.voxels == 0 and empty.total.ra950_percent == 0.0 and np.isnan(empty.total.perc15_hu)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shape"):
        measure_density(np.zeros((2, 3, 4), np.int16), np.zeros((2, 3, 5), np.uint8), 1.0)
