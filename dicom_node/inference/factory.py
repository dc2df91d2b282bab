"""From the `[models]` configuration to the models a pipeline calls, by role, each embedded or on Triton."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dicom_node.inference.base import InferenceModel
from dicom_node.inference.contract import configured_contract, resolve_contract
from dicom_node.inference.settings import InferenceSettings
from dicom_node.inference.triton import TritonModel

if TYPE_CHECKING:  # the protocol's name only: pipelines import inference, not the other way round
    from dicom_node.pipelines.protocol import Pipeline


def build_models(settings: InferenceSettings, pipeline: Pipeline, processing: Any = None) -> dict[str, InferenceModel]:
    """One model per role of `pipeline.model_roles`, each embedded or on Triton as `[models.ROLE]` says.

    The embedded models work with the pipeline's own processing settings (`processing`; None: its defaults), e.g.
    the model grid. Their contract is checked against the configured one here, at start-up; a Triton model's is
    checked by `check_ready()` once the server can be reached, since it may not be up yet.
    """
    processing = pipeline.settings_type() if processing is None else processing
    models: dict[str, InferenceModel] = {}
    for role in pipeline.model_roles:
        configured = settings.model(role, pipeline.default_model(role))
        if configured.backend == "triton":
            models[role] = TritonModel(configured)
            continue
        model = pipeline.embedded_model(role, processing)
        resolve_contract(configured_contract(configured), model.contract, "embedded")
        models[role] = model
    return models
