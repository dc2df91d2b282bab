"""Which backend runs each model, and the contract the node expects of it.

A model role's defaults (`LungSegmentationSettings` here, shared; a pipeline's own, e.g. the COVID-19
classifier's in `pipelines/covid19/plugin.py`) describe the Clara Deploy models as NVIDIA documented them
(see docs/triton.md): the node sends the same tensors whether the model runs
in-process or on Triton.  Tensor names, dims and dtypes left unset (None) are read
from the model itself (Triton's model metadata, or the embedded model's contract),
so pointing the node at a Triton that serves other models of the same shape needs
only `backend`, `url` and `model_name`. One `[models] url` serves every model (one
Triton usually serves them all); a model's own `url` overrides it. Models are
configured by role (`[models.lung_segmentation]`), over the defaults of the pipeline
that calls the role.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, model_validator

TRITON_SCHEMES = ("http", "https", "grpc")
BACKENDS_HELP = "'embedded' (in-process, the default) or 'triton' (on Triton Inference Server at url)"


def _check_triton_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in TRITON_SCHEMES or not parts.netloc:
        raise ValueError(f"url {url!r}: expected http://host:port, https://host:port or grpc://host:port")


class ModelSettings(BaseModel, frozen=True):
    """One model: where it runs, what it is called there, what goes in and out, how long to wait."""

    backend: Literal["embedded", "triton"] = Field("embedded", description=f"where the model runs: {BACKENDS_HELP}")
    url: str | None = Field(None, description="this model's Triton endpoint; unset: [models] url")
    model_name: str
    model_version: str = Field("", description="empty: the version Triton's version policy serves (latest)")
    input_name: str | None = Field(
        None,
        description="None: the model's only input (Clara Train 3 exported NV_MODEL_INPUT; "
        "NVIDIA never published the COVID-19 models' names, so none is assumed)",
    )
    output_name: str | None = Field(None, description="None: the model's only output")
    input_dims: tuple[int, ...] | None = Field(None, description="batch axis included; -1 = any size")
    output_dims: tuple[int, ...] | None = None
    input_dtype: str | None = Field(None, description="numpy dtype name, e.g. float32")
    output_dtype: str | None = None
    layout: tuple[str, ...] | None = Field(None, description="axis names of input_dims, e.g. N C X Y Z")
    class_names: tuple[str, ...] = ()
    connect_timeout_s: float = Field(3.0, gt=0, description="TCP connect and readiness calls")
    request_timeout_s: float = Field(120.0, gt=0, description="one inference call; CPU models are slow")
    retries: int = Field(3, ge=0, description="extra attempts after a transient failure, with backoff")
    backoff_s: float = Field(0.5, ge=0, description="first wait between attempts; doubled each time")
    backoff_max_s: float = Field(8.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ModelSettings:
        if self.backend == "triton" and self.url is not None:
            _check_triton_url(self.url)
        if self.layout is not None and self.input_dims is not None and len(self.layout) != len(self.input_dims):
            raise ValueError(f"layout {self.layout} does not name the {len(self.input_dims)} axes of {self.input_dims}")
        return self


class LungSegmentationSettings(ModelSettings, frozen=True):
    """Lung mask model; Clara's AH-Net ran on CT resampled to 0.8x0.8x5 mm, clipped to [-1500, 500] HU.

    The node sends one channel of the whole CT on the model grid (a pipeline's
    `processing.segmentation`), (z, y, x) as the pipeline holds it, and gets one label per voxel back: binary,
    lung = 1, as Clara's model gave it (the pipeline then splits right from left).
    """

    model_name: str = "lung_segmentation"
    input_dims: tuple[int, ...] | None = (1, 1, -1, -1, -1)
    output_dims: tuple[int, ...] | None = (1, 1, -1, -1, -1)
    input_dtype: str | None = "float32"
    output_dtype: str | None = "uint8"
    layout: tuple[str, ...] | None = ("N", "C", "Z", "Y", "X")
    class_names: tuple[str, ...] = ("background", "lung")


class InferenceSettings(BaseModel, frozen=True):
    """The `[models]` section of the node's configuration: the shared Triton url, and one `[models.ROLE]` table per
    model role a pipeline calls (`lung_segmentation`, ...), each over that role's defaults
    (the pipeline's `default_model`). A role nobody configures runs embedded with its defaults."""

    url: str = Field(
        "http://localhost:8000",
        description="Triton endpoint of every model with backend 'triton' and no url of its own; "
        "the scheme picks the protocol: http(s)://host:8000 or grpc://host:8001",
    )
    roles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="[models.ROLE] tables as configured")

    @model_validator(mode="before")
    @classmethod
    def _role_tables(cls, data: Any) -> Any:
        """`[models.ROLE]` tables (or ModelSettings given in code) go to `roles`, keeping only what was set."""
        if not isinstance(data, dict):
            return data
        tables = {key: value for key, value in data.items() if key not in ("url", "roles")}
        roles = dict(data.get("roles") or {})
        for role, table in tables.items():
            roles[role] = table.model_dump(exclude_unset=True) if isinstance(table, BaseModel) else table
        return {key: value for key, value in data.items() if key in ("url",)} | {"roles": roles}

    def model(self, role: str, default: ModelSettings) -> ModelSettings:
        """The settings of `role`: its table over `default`, with the shared Triton url where it has none."""
        try:
            settings = type(default).model_validate({**default.model_dump(exclude_unset=True), **self.roles.get(role, {})})
        except ValidationError as exc:
            raise ValueError(f"models.{role}: {exc}") from exc
        if settings.backend == "triton" and settings.url is None:
            _check_triton_url(self.url)
        return self.on_server(settings)

    def on_server(self, model: ModelSettings) -> ModelSettings:
        """`model` with its Triton endpoint: its own url, else the shared one."""
        return model if model.url is not None else model.model_copy(update={"url": self.url})
