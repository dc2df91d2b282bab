"""The lung-density pipeline's result manifest: the common manifest with its figures, as the job row keeps them.

A light module (pydantic only), like the common manifest: the CLI and the web app read it without numpy.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, field_validator

from dicom_node.output.colours import LEFT_LUNG_RGB, RIGHT_LUNG_RGB
from dicom_node.pipelines.manifest import Frozen, Headline, Overlay, ResultManifest

# One colour per structure everywhere (SEG, key images, viewer); the lungs as the COVID-19 pipeline shows them.
LOW_ATTENUATION_RGB = (255, 220, 0)
OVERLAYS = (
    Overlay(name="right_lung", array="lung_labels", value=1, rgb=RIGHT_LUNG_RGB, alpha=0.25),
    Overlay(name="left_lung", array="lung_labels", value=2, rgb=LEFT_LUNG_RGB, alpha=0.25),
    Overlay(name="low_attenuation", array="low_attenuation", rgb=LOW_ATTENUATION_RGB, alpha=0.7),
)
REGIONS = ("right", "left", "total")


def _none_for_nan(value: float | None) -> float | None:
    """NaN (an empty region's percentile, no parenchyma) is stored as null: JSON has no NaN."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class Figures(Frozen):
    """One region's densitometry (`density.DensityFigures`) at clinical precision; None where the region is empty."""

    voxels: int = Field(ge=0)
    volume_ml: float = Field(ge=0)
    ra950_percent: float = Field(ge=0, le=100)
    perc15_hu: float | None = None
    mean_hu: float | None = None

    _empty_is_none = field_validator("perc15_hu", "mean_hu", mode="before")(lambda value: _none_for_nan(value))


class Density(Frozen):
    """Per lung and both lungs (`lungs`: "right", "left", "total") and per zone ("upper", "middle", "lower")."""

    threshold_hu: int
    percentile: float
    lungs: dict[str, Figures]
    zones: dict[str, Figures]

    @field_validator("lungs")
    @classmethod
    def _every_region(cls, value: dict[str, Figures]) -> dict[str, Figures]:
        missing = set(REGIONS) - set(value)
        if missing:
            raise ValueError(f"figures missing for {sorted(missing)}")
        return value


class Acquisition(Frozen):
    """What the headers and the image say about how the scan was made, as far as densitometry cares
    (`fitness.read_acquisition`)."""

    kernel: str  # ConvolutionKernel as written (values joined by a backslash); "" when absent
    slice_thickness_mm: float
    thickness_source: str  # "SliceThickness (0018,0050)", or the slice spacing where it is absent
    contrast_agent: str  # ContrastBolusAgent; "" when absent
    noise_hu: float  # the parenchyma's fine-scale noise on the series' own grid
    parenchyma_median_hu: float | None = None  # None: no parenchyma found

    _no_parenchyma_is_none = field_validator("parenchyma_median_hu", mode="before")(lambda value: _none_for_nan(value))


class LungDensityHeadline(Headline):
    """RA-950 and Perc15 of both lungs, and whether the scan is fit for the QIBA profile (`marked`: it is not)."""

    ra950_percent: float
    perc15_hu: float | None = None
    lung_volume_ml: float


class LungDensityManifest(ResultManifest):
    DEFAULT_OVERLAYS: ClassVar[tuple[Overlay, ...]] = OVERLAYS

    headline: LungDensityHeadline | None = None
    density: Density | None = None
    acquisition: Acquisition | None = None

    @property
    def fit(self) -> bool:
        """Within the QIBA CT Lung Densitometry profile's conditions (no fitness flag)."""
        return not self.fitness_flags
