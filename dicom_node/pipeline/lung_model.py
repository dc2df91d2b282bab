"""The classical lung segmentation as an embedded model (segmenter `dicom-node-lung-classical`).

Input `NV_MODEL_INPUT` float32 [1, 1, Z, Y, X]: the CT in HU on the canonical model grid (spacing
`SegmentationSettings.grid_spacing_zyx`, clipped to `clip_hu`); output `NV_MODEL_OUTPUT` uint8, same shape,
1 = lung. A shared building block: every pipeline with a `lung_segmentation` role may embed it.
"""

from __future__ import annotations

import numpy as np

from dicom_node.inference.base import ModelContract, TensorSpec
from dicom_node.inference.embedded import INPUT, OUTPUT, check_inputs
from dicom_node.pipeline.lungs import segment_lungs
from dicom_node.pipeline.settings import SegmentationSettings


class EmbeddedLungSegmenter:
    """The classical lung segmentation of `dicom_node.pipeline.lungs`, as a model."""

    baseline = False

    def __init__(self, settings: SegmentationSettings = SegmentationSettings()) -> None:
        self.spacing = settings.grid_spacing_zyx
        self.contract = ModelContract(
            name="dicom-node-lung-classical",
            version="1",
            inputs=(TensorSpec(INPUT, (1, 1, -1, -1, -1), "float32"),),
            outputs=(TensorSpec(OUTPUT, (1, 1, -1, -1, -1), "uint8"),),
            class_names=("background", "lung"),
        )

    def check_ready(self) -> None:
        """Always ready: it runs in this process."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.contract, inputs)
        return {OUTPUT: segment_lungs(inputs[INPUT][0, 0], self.spacing)[None, None]}
