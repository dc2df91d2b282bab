"""The phantom suite: many anatomies (generator seeds) x soft and sharp kernels, worst case reported.

One seed can be lucky; the method has to hold for each. Every phantom is built with the
same options (branching vessel trees, ground-glass nodules, 4 % subpleural lesions) and
run through the pipeline in memory (no DICOM files: the load step is tested elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline
from dicom_node.pipelines.covid19.pipeline import PipelineResult, analyse_volume
from phantoms.chest import Phantom, make_phantom
from dicom_node.pipeline.settings import PipelineSettings
from dicom_node.pipeline.volume import CtVolume

SEEDS = tuple(range(1, 11))
KERNELS = ("soft", "sharp")
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class PhantomScore:
    seed: int
    kernel: str
    opacity_dice: float
    dice_in_lung_mask: float  # against the truth inside the node's lung mask: the opacity method without the lung mask's misses
    truth_outside_lung_mask: float  # share of the true opacity that the node's lung mask leaves out
    vessel_share: float  # of the vessel voxels, counted as opacity
    po: float
    truth_po: float
    edge_spread_mm: float
    smoothing_mm: float
    flags: tuple[str, ...]  # the fitness flags' codes


def suite_phantom(seed: int, kernel: str, size_xyz: tuple[int, int, int] = (256, 256, 80)) -> Phantom:
    return make_phantom(size_xyz, 0.04, seed=seed, vessel_tree=True, n_vessels_per_lung=8, ground_glass_nodules=4, kernel=kernel)


def phantom_volume(phantom: Phantom) -> CtVolume:
    """The phantom as a loaded series would be (identity orientation, no source files)."""
    n = phantom.hu.shape[0]
    return CtVolume(
        hu=phantom.hu,
        spacing=phantom.spacing,
        origin=phantom.origin,
        direction=IDENTITY,
        series_instance_uid="2.25.1",
        study_instance_uid="2.25.2",
        frame_of_reference_uid="2.25.3",
        source_files=(None,) * n,
        sop_instance_uids=(None,) * n,
    )


def score(seed: int, kernel: str, settings: PipelineSettings = PipelineSettings()) -> PhantomScore:
    phantom = suite_phantom(seed, kernel)
    result: PipelineResult = analyse_volume(phantom_volume(phantom), EmbeddedLungSegmenter(), EmbeddedOpacityBaseline(), settings)
    found, truth = result.opacity_mask, phantom.opacity
    vessels = phantom.vessels if phantom.vessels is not None else np.zeros_like(truth)
    quality = result.image_quality
    in_mask = truth & (result.lung_labels > 0)
    return PhantomScore(
        seed=seed,
        kernel=kernel,
        opacity_dice=2.0 * float((found & truth).sum()) / float(found.sum() + truth.sum()),
        dice_in_lung_mask=2.0 * float((found & in_mask).sum()) / float(found.sum() + in_mask.sum()),
        truth_outside_lung_mask=1.0 - float(in_mask.sum()) / float(truth.sum()),
        vessel_share=float((found & vessels).sum()) / max(1.0, float(vessels.sum())),
        po=result.measurements.opacity_percent["total"],
        truth_po=phantom.opacity_percent,
        edge_spread_mm=quality.edge_spread_mm if quality else float("nan"),
        smoothing_mm=quality.smoothing_mm if quality else float("nan"),
        flags=tuple(flag.code for flag in result.fitness),
    )
