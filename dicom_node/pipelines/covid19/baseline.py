"""dicom-node opacity baseline: an explainable stand-in for the COVID-19 classifier.

It is NOT the Clara DenseNet121 and makes no claim of its accuracy. It reads only the
classifier-input tensor, with fixed constants, so it gives the same answer in-process
and on Triton:

1. the tensor is mapped back to HU through the configured window; voxels equal to the
   fill value are outside the lungs, the others are the lung;
2. opacity is found with the quantification's filters (`opacity.opacity_masks`) on an
   assumed voxel size of `NOMINAL_SPACING_ZYX` (a 192x192x64 crop of adult lungs is
   about 300 x 230 x 260 mm), with lesions of at least `MIN_LESION_ML` (at this coarse
   resolution vessel knots near the hilum reach 2 ml);
3. only opacity within `PERIPHERAL_ZONE_MM` of the lung boundary counts (the depth is
   measured on a grid subsampled in-plane by `DEPTH_STEP`, `depth.py`): COVID-19
   opacities are predominantly peripheral and subpleural, while the remaining false
   positives of normal lungs are central vessels; the score is
   PPO = peripheral opacity volume / lung volume, in percent;
4. the COVID-19 index is the logistic curve

       index(COVID-19) = 1 / (1 + exp(-(PPO - PPO_MIDPOINT) / PPO_SCALE)),  PPO_MIDPOINT = 1.0 %, PPO_SCALE = 0.25 %

   and index(non-COVID) = 1 - index. No peripheral opacity gives 0.02, 1% gives 0.5, 2%
   gives 0.98. Measured: 1.5% on the COVID-19 case P001 (0.89), 0.6% on the normal case
   normal001 (0.17), 0.3% on a phantom without lesions. The index fills the two outputs
   that Clara's classifier contract defines as probabilities, so the node runs the same
   with either; but nothing calibrated it (it is 0.89-1.00 for pneumonia and lung tumours
   alike, `docs/validation.md`), so no output presents it as a probability: results call it
   "baseline index, not a probability" (`Classification.score_kind`) and lead with the RSNA
   category (`category.py`) instead. Any peripheral opacity (other pneumonia, oedema,
   fibrosis, a tumour) raises it, which is why it is a baseline and is labelled as such in
   every result.
"""

from __future__ import annotations

import math

import numpy as np

from dicom_node.pipelines.covid19.classifier_input import from_layout, range_to_hu
from dicom_node.pipeline.depth import coarse_depth_mm, to_full_grid
from dicom_node.pipelines.covid19.opacity import opacity_masks
from dicom_node.pipeline.settings import ClassifierInputSettings, HarmonisationSettings, OpacitySettings

MODEL_NAME = "dicom-node-opacity-baseline"
PPO_MIDPOINT = 1.0
PPO_SCALE = 0.25
NOMINAL_SPACING_ZYX = (4.0, 1.2, 1.6)
MIN_LESION_ML = 4.0
PERIPHERAL_ZONE_MM = 15.0
DEPTH_STEP = 2  # the depth is measured on a 2.4 x 3.2 mm in-plane grid (`depth.py`)
# Fixed filters of the baseline: it must not change with the node's quantification settings, so every
# field is named here (a default of `OpacitySettings` that changes, or a new field, must not reach it
# unannounced: `grow_uphill_hu` once did; a test checks that none is left out). At its coarse nominal grid the
# tubular test and the focal ground-glass seeds of the quantification are not calibrated; its seeds grow as
# when its curve was set (four steps of its 4 mm ball: 16 mm along z).
BASELINE_OPACITY = OpacitySettings(
    opacity_hu=(-700.0, 100.0),
    high_opacity_hu=(-200.0, 100.0),
    pleural_margin_mm=3.0,
    vessel_radius_mm=5.0,
    vessel_shell_mm=3.0,
    ground_glass_opening_mm=3.0,
    min_lesion_ml=MIN_LESION_ML,
    tubular_scales_mm=(2.0, 3.5, 5.0),
    tubular_vesselness=0.3,
    tubular_max_fraction=1.0,
    tubular_max_lesion_ml=10.0,
    focal_excess_hu=None,
    focal_scale_mm=3.0,
    focal_min_ml=0.3,
    focal_max_vessel_contact=0.02,
    grow_along_z_mm=16.0,
    grow_uphill_hu=50.0,
    growth_stop_hu=None,
    growth_stop_width_mm=10.0,
    hazy_seed_stop_hu=None,
    harmonisation=HarmonisationSettings(enabled=False),
)


def covid_index(peripheral_opacity_percent: float) -> float:
    """The documented logistic curve from PPO (percent) to the COVID-19 index (not a probability)."""
    return 1.0 / (1.0 + math.exp(-(peripheral_opacity_percent - PPO_MIDPOINT) / PPO_SCALE))


def tensor_peripheral_opacity_percent(
    tensor: np.ndarray, input_settings: ClassifierInputSettings = ClassifierInputSettings()
) -> float:
    """PPO read from a classifier-input tensor whose outside-lung voxels hold the fill value."""
    if input_settings.fill_hu is None:
        raise ValueError("the opacity baseline needs a masked classifier input (fill_hu set)")
    values = from_layout(tensor, input_settings.layout)
    hu = range_to_hu(values, input_settings.window_hu, input_settings.output_range)
    lung = np.abs(hu - input_settings.fill_hu) > 1e-3
    if not lung.any():
        return 0.0
    opacity = opacity_masks(hu, lung, NOMINAL_SPACING_ZYX, BASELINE_OPACITY).opacity
    coarse, depth = coarse_depth_mm(lung, NOMINAL_SPACING_ZYX, DEPTH_STEP)
    peripheral = to_full_grid(coarse & (depth <= PERIPHERAL_ZONE_MM), lung.shape, DEPTH_STEP)
    return 100.0 * float((opacity & peripheral).sum()) / float(lung.sum())


def baseline_scores(
    tensor: np.ndarray, input_settings: ClassifierInputSettings = ClassifierInputSettings()
) -> np.ndarray:
    """[[index(non-COVID), index(COVID-19)]] as float32, in the classifier contract's output slots."""
    p = covid_index(tensor_peripheral_opacity_percent(tensor, input_settings))
    return np.array([[1.0 - p, p]], dtype=np.float32)
