"""From the `[models]` configuration to the two models the COVID-19 pipeline calls."""

from __future__ import annotations

from collections.abc import Callable

from dicom_node.inference.base import InferenceModel
from dicom_node.inference.contract import configured_contract, resolve_contract
from dicom_node.inference.embedded import EmbeddedLungSegmenter, EmbeddedOpacityBaseline
from dicom_node.inference.settings import InferenceSettings, ModelSettings
from dicom_node.inference.triton import TritonModel
from dicom_node.pipeline.settings import PipelineSettings


def build_models(
    settings: InferenceSettings, pipeline: PipelineSettings = PipelineSettings()
) -> tuple[InferenceModel, InferenceModel]:
    """(lung segmenter, COVID-19 classifier), each embedded or on Triton as configured.

    The embedded models work with the pipeline's own settings (model grid, classifier
    input); the baseline classifier's opacity filters are fixed constants, so that it
    answers the same wherever it runs.  Their contract is checked against the configured one
    here, at start-up; a Triton model's is checked by `check_ready()` once the server
    can be reached, since it may not be up yet.
    """
    segmenter = _build(settings.on_server(settings.lung_segmentation), lambda: EmbeddedLungSegmenter(pipeline.segmentation))
    classifier = _build(settings.on_server(settings.covid_classifier), lambda: EmbeddedOpacityBaseline(pipeline.classifier_input))
    return segmenter, classifier


def _build(settings: ModelSettings, embedded: Callable[[], InferenceModel]) -> InferenceModel:
    if settings.backend == "triton":
        return TritonModel(settings)
    model = embedded()
    resolve_contract(configured_contract(settings), model.contract, "embedded")
    return model
