"""The seam between the node and an image pipeline: what a pipeline is, what it is given, what it returns.

The node (worker, job scheduler, web, CLI, export) knows pipelines only through this protocol and the registry
(`pipelines/registry.py`); a pipeline knows the node only through `SeriesInput`, `ResultTarget` and the models
it is handed by role. A pipeline:

- is named (`name`: the registry key, the job's `pipeline`, `[pipelines.NAME]` in the configuration; `called_ae`:
  the AE title the default configuration binds to it) and
  versioned (`algorithm`: name and version, part of every result UID);
- declares the model roles it calls (`model_roles`, each configured under `[models.ROLE]`, embedded or on
  Triton) and builds a role's embedded model itself (`embedded_model`);
- declares its `[pipelines.NAME.processing]` table (`settings_type`, a `ProcessingSettings`: every pipeline has
  series-selection and load rules) and its result manifest (`manifest_type`);
- `run`s on one series with its models (data problems raise `pipeline.errors.SeriesRejected` or
  `SeriesNotEligible`; an unreachable model `inference.base.InferenceUnavailable`, and the job waits);
- `write`s that run's result into the job's result folder and returns the manifest the job row keeps.

Light on purpose (no numpy, no highdicom): the registry, the configuration and the CLI import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dicom_node.output.uids import AlgorithmId
from dicom_node.pipeline.settings import ProcessingSettings
from dicom_node.pipelines.manifest import ResultManifest

if TYPE_CHECKING:  # type names only: importing them would load numpy and pydicom into every reader of the registry
    from dicom_node.inference.base import InferenceModel
    from dicom_node.inference.settings import ModelSettings
    from dicom_node.output.inputs import JobInput


@dataclass(frozen=True)
class SeriesInput:
    """One series as a job hands it to a pipeline: its stored instance files, and a folder on the data disk
    where the pipeline may spill large arrays out of memory (`pipeline/spill.py`; None: keep them in memory)."""

    paths: tuple[Path, ...]
    spill_dir: Path | None = None


@dataclass(frozen=True)
class ResultTarget:
    """Where and how a pipeline writes one job's result.

    `out_dir` is the job's own folder (`<data dir>/results/<job id>`): fixed file names there, so a re-run of the
    job overwrites its own files. The manifest's paths are relative to `data_dir`. `job_input` carries the
    input's digest (the result's UIDs follow it), its completeness and the result it replaces.
    `secondary_capture`: also write the summary page and key images (`[export] secondary_capture`).
    """

    out_dir: Path
    data_dir: Path
    job_input: JobInput
    secondary_capture: bool = True

    def relative(self, path: Path) -> str:
        """`path` as a manifest keeps it."""
        return str(path.relative_to(self.data_dir))


class PipelineRun(Protocol):
    """What `Pipeline.run` returns: anything its own `write` understands, with the wall time of each step."""

    timings: dict[str, float]


class Pipeline(Protocol):
    """An image pipeline the node can run on a series (see the module's docstring)."""

    name: str
    called_ae: str  # the AE title bound to it alone by default (`[[dicom.called_aes]]`)
    algorithm: AlgorithmId
    model_roles: tuple[str, ...]
    settings_type: type[ProcessingSettings]
    manifest_type: type[ResultManifest]

    def default_model(self, role: str) -> ModelSettings:
        """The `[models.ROLE]` settings used where the configuration sets none (a role's defaults)."""
        ...

    def embedded_model(self, role: str, settings: Any) -> InferenceModel:
        """The in-process model for `role`, working with this pipeline's processing settings."""
        ...

    def run(self, series: SeriesInput, models: Mapping[str, InferenceModel], settings: Any) -> PipelineRun:
        """Process one series; `models` holds one ready model per role of `model_roles`, `settings` is a
        `settings_type`."""
        ...

    def write(self, result: Any, target: ResultTarget) -> ResultManifest:
        """Write `result` (what `run` returned) into `target.out_dir` and say what was written."""
        ...
