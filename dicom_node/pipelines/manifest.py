"""A job's result manifest: what a pipeline wrote for one series, typed, as the job row keeps it (`Job.result`).

Every reader of a done job's result reads it through this class, whatever the pipeline: the worker (the
objects it queues), the web pages (downloads, overlays, headline), the CLI, the DICOMweb catalogue,
`exports resend`, inference requests (the version that made it) and the job queue (the SR a new result
replaces). The list of DICOM files is the manifest's own (`dicom_files`), so what a pipeline writes and what
those readers send or serve cannot drift apart. A pipeline adds its own findings in a subclass
(`pipelines/covid19/manifest.py`); the registry names that subclass, and `read_manifest` picks it by the
job's pipeline.

A light module (pydantic only): the CLI and the web app read manifests without the image pipeline.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Frozen(BaseModel):
    """A part of a manifest: immutable; keys the reader does not know (an older or newer node's) are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class StoredFiles(Frozen):
    """The result's fixed files, relative to the data dir; None: the pipeline writes no such file (or an old
    result lacks it)."""

    seg: str | None = None  # DICOM Segmentation (sent first: the SR references it)
    sr: str | None = None  # DICOM SR (TID 1500); the newest one is what a later result of the series replaces
    csv: str | None = None
    json_file: str | None = Field(default=None, alias="json")  # the full result document
    masks: str | None = None  # .npz of the masks on the CT grid, for the viewer (`Overlay.array` names its members)


class Headline(Frozen):
    """The result in one line, and whether it is marked (the scan is outside what the method was validated for)."""

    text: str
    marked: bool = False


class Overlay(Frozen):
    """One structure the viewer blends over the CT: voxels of `array` (a member of the masks file) equal to
    `value` (None: any non-zero voxel), in `rgb` at `alpha`; drawn in the manifest's order (last on top)."""

    name: str  # e.g. "right_lung": the legend's key
    array: str  # e.g. "lung_labels"
    value: int | None = None
    rgb: tuple[int, int, int]
    alpha: float = Field(ge=0.0, le=1.0)


class Replaced(Frozen):
    """The earlier result this one replaces: its SR and when it was made (ISO 8601, UTC)."""

    sop_instance_uid: str
    created: str


class Lineage(Frozen):
    """What the result was made of (`output/inputs.py`): the input's digest (the result's UIDs follow it), how many
    instances, whether it may be incomplete and why, and the result it replaces."""

    digest: str = ""
    instances: int | None = None
    possibly_incomplete: bool = False
    incomplete_hints: list[str] = Field(default_factory=list)
    replaces: Replaced | None = None


class Flag(Frozen):
    """A condition outside what the method was validated for (`pipeline/fitness.py` FitnessFlag, as stored)."""

    code: str
    title: str
    reason: str
    measured: float
    limit: float
    unit: str
    above: bool = True


class ResultManifest(Frozen):
    """The part of every pipeline's result that the node itself reads. Subclasses add the pipeline's findings."""

    # The overlays of results stored before manifests named theirs (a subclass sets its pipeline's).
    DEFAULT_OVERLAYS: ClassVar[tuple[Overlay, ...]] = ()

    pipeline: str  # the registry's name, as the job's `pipeline`
    algorithm_version: str = ""  # the version that made it ("": before it was kept); a request re-runs a series only for another one
    files: StoredFiles = StoredFiles()
    summary: str | None = None  # the summary page (secondary capture), relative to the data dir
    secondary_capture: list[str] = Field(default_factory=list)  # key images, relative to the data dir
    warnings: list[str] = Field(default_factory=list)  # what was wrong with the source (e.g. invalid identifiers)
    input: Lineage | None = None
    headline: Headline | None = None
    fitness_flags: list[Flag] = Field(default_factory=list)
    overlays: list[Overlay] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _overlays_of_old_results(cls, data: Any) -> Any:
        """A result stored before manifests listed their overlays gets its pipeline's (masks file present)."""
        if isinstance(data, dict) and "overlays" not in data and (data.get("files") or {}).get("masks"):
            return {**data, "overlays": [overlay.model_dump() for overlay in cls.DEFAULT_OVERLAYS]}
        return data

    def dicom_files(self) -> list[str]:
        """The DICOM files to send or serve, relative to the data dir, in sending order: SEG first (the SR
        references it), SR, summary page, key images. Kinds the result lacks are left out."""
        names = [self.files.seg, self.files.sr, self.summary, *self.secondary_capture]
        return [name for name in names if name]

    def one_line(self) -> str:
        """The result in a table cell (`dicom-node jobs list`): the headline, or '' without one."""
        return self.headline.text if self.headline else ""

    def log_line(self) -> str:
        """The result in the worker's done line: the headline and the fitness flags' codes."""
        return f"{self.one_line()}; fitness flags: {', '.join(flag.code for flag in self.fitness_flags) or 'none'}"

    def to_json(self) -> dict[str, Any]:
        """What `Job.result` stores and the API serves; `from_json` reads it back to an equal manifest."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultManifest:
        return cls.model_validate(data)
