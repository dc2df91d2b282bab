"""The explainable opacity baseline as the COVID-19 classifier (`dicom-node-opacity-baseline`).

Input `NV_MODEL_INPUT` float32 in the configured layout (default [1, 1, 192, 192, 64]); output
`NV_MODEL_OUTPUT` float32 [1, 2] = (p(non-COVID), p(COVID-19)). It is a baseline (`baseline = True`),
see `baseline.py`.
"""

from __future__ import annotations

import numpy as np

from dicom_node.inference.base import ModelContract, TensorSpec
from dicom_node.inference.embedded import INPUT, OUTPUT, check_inputs
from dicom_node.pipeline.settings import ClassifierInputSettings
from dicom_node.pipelines.covid19 import baseline as opacity_baseline

COVID_CLASSES = ("non-COVID", "COVID-19")


class EmbeddedOpacityBaseline:
    """The explainable opacity baseline of `baseline.py`, as a classifier."""

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
