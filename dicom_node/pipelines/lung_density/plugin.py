"""The lung-density pipeline as the node sees it: its name, model, settings, manifest, and how it runs and writes.

The image work is in `pipeline.py`, the files in `write.py`; both are imported when a job runs, not when the
registry is read (the CLI and the configuration read it and need neither numpy nor highdicom).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from dicom_node.inference.settings import LungSegmentationSettings, ModelSettings
from dicom_node.output.uids import AlgorithmId
from dicom_node.pipelines.lung_density.manifest import LungDensityManifest
from dicom_node.pipelines.lung_density.settings import LungDensitySettings
from dicom_node.pipelines.protocol import ResultTarget, SeriesInput

if TYPE_CHECKING:
    from dicom_node.inference.base import InferenceModel
    from dicom_node.pipelines.lung_density.pipeline import LungDensityResult

SEGMENTER = "lung_segmentation"


class LungDensityPipeline:
    """Lung densitometry after the QIBA CT Lung Densitometry profile: RA-950, Perc15, lung volume and mean lung
    density per lung, both lungs and zone, with the scan's fitness for the profile."""

    name = "lung_density"
    called_ae = "LUNGDENSITY"
    # its own: result UIDs follow it (as COVID-19's); series 9011-9014, beside COVID-19's 9001-9004 on one study
    algorithm = AlgorithmId("dicom-node lung density", "0.1.1", series_block=9010)
    model_roles = (SEGMENTER,)
    settings_type = LungDensitySettings
    manifest_type = LungDensityManifest

    def default_model(self, role: str) -> ModelSettings:
        if role != SEGMENTER:
            raise KeyError(role)
        return LungSegmentationSettings()

    def embedded_model(self, role: str, settings: LungDensitySettings) -> InferenceModel:
        """The classical lung segmentation on the pipeline's model grid (the COVID-19 pipeline's, shared)."""
        from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter

        if role != SEGMENTER:
            raise KeyError(role)
        return EmbeddedLungSegmenter(settings.segmentation)

    def run(self, series: SeriesInput, models: Mapping[str, InferenceModel], settings: LungDensitySettings) -> LungDensityResult:
        from dicom_node.pipelines.lung_density.pipeline import run_lung_density

        return run_lung_density(series.paths, models[SEGMENTER], settings)

    def write(self, result: LungDensityResult, target: ResultTarget) -> LungDensityManifest:
        from dicom_node.pipelines.lung_density.write import write_lung_density

        return write_lung_density(result, target, self.name, self.algorithm)


LUNG_DENSITY = LungDensityPipeline()
