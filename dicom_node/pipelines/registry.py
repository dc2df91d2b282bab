"""The named pipelines this node can run: the one place that lists them.

A called AE (`[[dicom.called_aes]] pipelines`), an inference request and a job name a pipeline by its
registry name; the worker runs whatever the job names, through the `Pipeline` protocol. Adding a pipeline is
one entry here and its own package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dicom_node.pipelines.covid19.plugin import COVID19
from dicom_node.pipelines.lung_density.plugin import LUNG_DENSITY
from dicom_node.pipelines.manifest import ResultManifest
from dicom_node.pipelines.protocol import Pipeline

PIPELINES: dict[str, Pipeline] = {pipeline.name: pipeline for pipeline in (COVID19, LUNG_DENSITY)}


class UnknownPipeline(KeyError):
    """A name no pipeline of this node has (the message lists those it has)."""

    def __str__(self) -> str:
        return f"unknown pipeline {self.args[0]!r} (pipelines: {', '.join(PIPELINES)})"


def pipeline(name: str) -> Pipeline:
    """The pipeline registered as `name`, or UnknownPipeline."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise UnknownPipeline(name) from None


def read_manifest(pipeline_name: str, stored: dict[str, Any] | None) -> ResultManifest | None:
    """A job's stored result (`Job.result`) as its pipeline's manifest; None for a job without one (not done).

    Results stored before manifests carried the pipeline's name take the job's; a pipeline no longer
    registered is read as the common manifest (its files can still be served and sent).
    """
    if not stored:
        return None
    kind = PIPELINES[pipeline_name].manifest_type if pipeline_name in PIPELINES else ResultManifest
    return kind.from_json({"pipeline": pipeline_name, **stored})


def stored_dicom_files(pipeline_name: str, stored: Mapping[str, Any]) -> list[str]:
    """A done job's DICOM result files (relative to the data dir), as its manifest lists them; none without one."""
    manifest = read_manifest(pipeline_name, dict(stored))
    return manifest.dicom_files() if manifest is not None else []
