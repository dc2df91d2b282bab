"""The COVID-19 CT pipeline as the node sees it: its name, models, settings, manifest, and how it runs and writes.

The image work is in `pipeline.py` (run_covid19), the files in `output/`; they are imported when a job
runs, not when the registry is read (the CLI and the configuration read it, and need neither numpy nor highdicom).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_node.inference.settings import LungSegmentationSettings, ModelSettings
from dicom_node.output.uids import AlgorithmId
from dicom_node.pipeline.settings import PipelineSettings
from dicom_node.pipelines.covid19.manifest import OVERLAYS, Covid19Manifest
from dicom_node.pipelines.protocol import ResultTarget, SeriesInput

if TYPE_CHECKING:
    from dicom_node.inference.base import InferenceModel
    from dicom_node.output.results import ResultFiles
    from dicom_node.pipelines.covid19.pipeline import PipelineResult

SEGMENTER, CLASSIFIER = "lung_segmentation", "covid_classifier"
MASKS_FILE = "masks.npz"


class CovidClassifierSettings(ModelSettings, frozen=True):
    """Clara `classification_covid-19_v1` (3D DenseNet121): one channel of 192x192x64 in, 2 probabilities out."""

    model_name: str = "covid_classifier"
    input_dims: tuple[int, ...] | None = (1, 1, 192, 192, 64)
    output_dims: tuple[int, ...] | None = (1, 2)
    input_dtype: str | None = "float32"
    output_dtype: str | None = "float32"
    layout: tuple[str, ...] | None = ("N", "C", "X", "Y", "Z")
    class_names: tuple[str, ...] = ("non-COVID", "COVID-19")


class Covid19Pipeline:
    """Lungs, COVID-19 classification and opacity quantification of a chest CT (`pipeline.py`)."""

    name = "covid19_ct"
    called_ae = "CLARA"
    # Its own version, not the package's: every result UID derives from it and the input, so a change of what the
    # pipeline writes for the same input takes a new version (tests/pipeline/test_p001_unchanged.py holds it to that).
    # 0.2.0: issue 22's opacity method (growth downhill only, the tubular test off); 0.3.0: the growth stops at thin
    # bright structures; 0.3.1: a key image's legend wraps where the headline is wider than the image; 0.3.2: hazy seeds
    # leave out thin bright voxels (vessel knots without a vessel shell); 0.3.3: the noise step goes to the reference;
    # 0.3.4: the growth stop at the middle of its measured plateau (75 HU); 0.3.5: the MEDIASTINUM fitness flag.
    algorithm = AlgorithmId("dicom-node COVID-19 CT", "0.3.5")
    model_roles = (SEGMENTER, CLASSIFIER)
    settings_type = PipelineSettings
    manifest_type = Covid19Manifest

    def default_model(self, role: str) -> ModelSettings:
        return {SEGMENTER: LungSegmentationSettings, CLASSIFIER: CovidClassifierSettings}[role]()

    def embedded_model(self, role: str, settings: PipelineSettings) -> InferenceModel:
        """The classical lung segmentation on the pipeline's model grid; the explainable opacity baseline as classifier."""
        from dicom_node.pipeline.lung_model import EmbeddedLungSegmenter
        from dicom_node.pipelines.covid19.baseline_model import EmbeddedOpacityBaseline

        if role == SEGMENTER:
            return EmbeddedLungSegmenter(settings.segmentation)
        if role == CLASSIFIER:
            return EmbeddedOpacityBaseline(settings.classifier_input)
        raise KeyError(role)

    def run(self, series: SeriesInput, models: Mapping[str, InferenceModel], settings: PipelineSettings) -> PipelineResult:
        from dicom_node.pipelines.covid19.pipeline import run_covid19

        return run_covid19(series.paths, models[SEGMENTER], models[CLASSIFIER], settings, spill_dir=series.spill_dir)

    def write(self, result: PipelineResult, target: ResultTarget) -> Covid19Manifest:
        """SEG, SR, CSV, JSON, summary page and key images (`output/results.py`), and the masks for the viewer."""
        from concurrent.futures import ThreadPoolExecutor

        from dicom_node.output.masks import save_masks
        from dicom_node.output.results import write_results

        # The masks' compression (zlib, which releases the GIL) runs beside the DICOM writing.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="masks") as pool:
            arrays = {"lung_labels": result.lung_labels, "opacity_mask": result.opacity_mask}
            masks_saved = pool.submit(save_masks, arrays, target.out_dir / MASKS_FILE)
            files = write_results(
                result, target.out_dir, self.algorithm, secondary_capture=target.secondary_capture, job_input=target.job_input
            )
            masks = masks_saved.result()
        return self.manifest(result, files, target, masks)

    def manifest(self, result: PipelineResult, files: ResultFiles, target: ResultTarget, masks: Path) -> Covid19Manifest:
        """What the job row keeps: the headline, the category's criteria, the fitness flags, measurements, the
        classifier's scores and where the result files are."""
        from dataclasses import asdict

        from dicom_node.output.summary import rounded_measurements
        from dicom_node.output.tables import headline

        named = {"seg": files.seg, "sr": files.sr, "csv": files.csv, "json": files.json, "masks": masks}
        return Covid19Manifest.model_validate(
            {
                "pipeline": self.name,
                "algorithm_version": self.algorithm.version,
                "files": {key: target.relative(path) for key, path in named.items()},
                "secondary_capture": [target.relative(p) for p in files.secondary_capture],
                "summary": target.relative(files.summary) if files.summary else None,
                "warnings": files.warnings,
                "headline": headline(result),
                "category": result.category.as_dict() if result.category else None,
                "fitness_flags": [flag.as_dict() for flag in result.fitness],
                "input": files.input,
                "measurements": rounded_measurements(result.measurements),
                "classification": {**asdict(result.classification), "score_kind": result.classification.score_kind},
                "pattern": asdict(result.pattern) if result.pattern else None,
                "overlays": [overlay.model_dump() for overlay in OVERLAYS],
            }
        )


COVID19 = Covid19Pipeline()
