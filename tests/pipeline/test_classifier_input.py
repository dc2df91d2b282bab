"""The classifier input follows the Clara contract: lung crop, 192x192x64, window, fill, layout."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node.pipelines.covid19.classifier_input import build_classifier_input, from_layout, lung_bounding_box, range_to_hu
from dicom_node.pipeline.settings import ClassifierInputSettings

SPACING = (2.5, 1.6, 1.6)


@pytest.fixture()
def ct_and_lungs() -> tuple[np.ndarray, np.ndarray]:
    """A CT of soft tissue with a box of lung (-850 HU) holding a 100 HU nodule."""
    ct = np.full((60, 120, 150), 40.0, dtype=np.float32)
    lungs = np.zeros(ct.shape, dtype=np.uint8)
    lungs[10:50, 20:100, 30:130] = 1
    ct[lungs > 0] = -850.0
    ct[28:32, 55:65, 75:85] = 100.0
    return ct, lungs


def test_default_tensor_is_1_1_192_192_64_float32_in_0_1(ct_and_lungs):
    tensor = build_classifier_input(*ct_and_lungs, SPACING)
    assert tensor.shape == (1, 1, 192, 192, 64)
    assert tensor.dtype == np.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0


def test_crop_is_the_lung_box_plus_margin(ct_and_lungs):
    _, lungs = ct_and_lungs
    box = lung_bounding_box(lungs, SPACING, margin_mm=10.0)
    assert box == (slice(6, 54), slice(13, 107), slice(23, 137))


def test_outside_the_lungs_is_the_fill_value_and_inside_keeps_hu(ct_and_lungs):
    settings = ClassifierInputSettings()
    hu = range_to_hu(from_layout(build_classifier_input(*ct_and_lungs, SPACING, settings), settings.layout), settings.window_hu, settings.output_range)
    assert hu[0, 0, 0] == pytest.approx(-1000.0)  # the margin around the lungs is filled
    assert hu[32, 96, 96] == pytest.approx(100.0, abs=1.0)  # the nodule at the centre
    lung_values = hu[(hu > -1000) & (hu < 0)]
    assert np.median(lung_values) == pytest.approx(-850.0, abs=1.0)


def test_layout_window_and_fill_are_configurable(ct_and_lungs):
    settings = ClassifierInputSettings(
        layout=("N", "C", "Z", "Y", "X"), window_hu=(-1500.0, 500.0), output_range=(-1.0, 1.0), fill_hu=None
    )
    tensor = build_classifier_input(*ct_and_lungs, SPACING, settings)
    assert tensor.shape == (1, 1, 64, 192, 192)
    corner_hu = range_to_hu(tensor[0, 0, 0, 0, 0], settings.window_hu, settings.output_range)
    assert float(corner_hu) == pytest.approx(40.0, abs=1.0)  # unmasked: soft tissue kept (MONAI release)
