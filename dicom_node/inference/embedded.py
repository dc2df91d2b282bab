"""In-process models: the classical lung segmentation and the opacity baseline classifier.

They honour the same `ModelContract` a Triton model would (tensor names in Clara Train 3's
default `NV_MODEL_INPUT`/`NV_MODEL_OUTPUT` style), so the pipeline cannot tell them apart:

- segmenter `dicom-node-lung-classical`: input `NV_MODEL_INPUT` float32 [1, 1, Z, Y, X],
  the CT in HU on the canonical model grid (spacing `SegmentationSettings.grid_spacing_zyx`,
  clipped to `clip_hu`); output `NV_MODEL_OUTPUT` uint8, same shape, 1 = lung;
- classifier `dicom-node-opacity-baseline`: input `NV_MODEL_INPUT` float32 in the
  configured layout (default [1, 1, 192, 192, 64]); output `NV_MODEL_OUTPUT` float32
  [1, 2] = (p(non-COVID), p(COVID-19)). It is a baseline (`baseline = True`), see
  `dicom_node.pipeline.baseline`.
"""

from __future__ import annotations

import numpy as np

from dicom_node.inference.base import ContractMismatch, ModelContract, TensorSpec
from dicom_node.pipeline import baseline as opacity_baseline
from dicom_node.pipeline.lungs import segment_lungs
from dicom_node.pipeline.settings import ClassifierInputSettings, SegmentationSettings

INPUT, OUTPUT = "NV_MODEL_INPUT", "NV_MODEL_OUTPUT"
COVID_CLASSES = ("non-COVID", "COVID-19")


def check_inputs(contract: ModelContract, inputs: dict[str, np.ndarray]) -> None:
    """Raise ContractMismatch naming the tensor unless `inputs` match the contract's inputs."""
    for spec in contract.inputs:
        if spec.name not in inputs:
            raise ContractMismatch(f"{contract.name}: input tensor {spec.name} missing (got {sorted(inputs)})")
        array = inputs[spec.name]
        if not spec.accepts(array.shape) or array.dtype != np.dtype(spec.dtype):
            raise ContractMismatch(
                f"{contract.name}: input {spec.name} is {array.dtype}{list(array.shape)}, "
                f"expected {spec.dtype}{list(spec.dims)}"
            )


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


class EmbeddedOpacityBaseline:
    """The explainable opacity baseline of `dicom_node.pipeline.baseline`, as a classifier."""

    baseline = True
    model_name = opacity_baseline.MODEL_NAME

    def __init__(self, input_settings: ClassifierInputSettings = ClassifierInputSettings()) -> None:
        self.input_settings = input_settings
        dims = {"N": 1, "C": 1, "X": input_settings.size_xyz[0], "Y": input_settings.size_xyz[1], "Z": input_settings.size_xyz[2]}
        self.contract = ModelContract(
            name=opacity_baseline.MODEL_NAME,
            version="1",
            inputs=(TensorSpec(INPUT, tuple(dims[a] for a in input_settings.layout), "float32"),),
            outputs=(TensorSpec(OUTPUT, (1, 2), "float32"),),
            class_names=COVID_CLASSES,
        )

    def check_ready(self) -> None:
        """Always ready: it runs in this process."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.contract, inputs)
        return {OUTPUT: opacity_baseline.baseline_scores(inputs[INPUT], self.input_settings)}
