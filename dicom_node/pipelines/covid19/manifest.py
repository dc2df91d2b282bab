"""The COVID-19 pipeline's result manifest: the common manifest with its findings, as the job row keeps them.

The shapes are those the JSON document (`result.json`) and the job row have had since the headline
existed; older rows read too (no headline, "probabilities" before the scores were renamed, no score kind).
A light module (pydantic only), like the common manifest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from dicom_node.output.colours import LEFT_LUNG_RGB, OPACITY_RGB, RIGHT_LUNG_RGB
from dicom_node.output.display import shown
from dicom_node.pipelines.manifest import Frozen, Headline, Overlay, ResultManifest

BASELINE_SCORE_KIND = "baseline index, not a probability"
# One colour per structure everywhere: the SEG's segment colours (also the key images'); the opacity on top.
OVERLAYS = (
    Overlay(name="right_lung", array="lung_labels", value=1, rgb=RIGHT_LUNG_RGB, alpha=0.30),
    Overlay(name="left_lung", array="lung_labels", value=2, rgb=LEFT_LUNG_RGB, alpha=0.30),
    Overlay(name="opacity", array="opacity_mask", rgb=OPACITY_RGB, alpha=0.65),
)


class Covid19Headline(Headline):
    """RSNA category, zone-based severity score and PO, as the summary page's first lines."""

    category: str | None = None  # RsnaCategory value, e.g. "typical"; None: not assessed
    category_title: str | None = None
    zone_based_severity_score: int | None = None  # 0..30
    opacity_percent: float | None = None


class Criterion(Frozen):
    code: str
    title: str
    met: bool
    detail: str


class Category(Frozen):
    """The RSNA reporting category (`pipelines/covid19/category.py` RsnaAssessment.as_dict)."""

    category: str
    title: str
    rule: str
    source: str
    criteria: list[Criterion]


class Measurements(Frozen):
    """Per side ("right", "left", "total") at clinical precision (`output/summary.py` rounded_measurements); an
    old row may lack some."""

    lung_volume_ml: dict[str, float] = Field(default_factory=dict)
    opacity_volume_ml: dict[str, float] = Field(default_factory=dict)
    opacity_percent: dict[str, float] = Field(default_factory=dict)
    high_opacity_percent: dict[str, float] = Field(default_factory=dict)


class Classification(Frozen):
    """What the classifier said and which classifier said it (`scores`: per class, in `class_names`' order)."""

    model_name: str = ""  # "": a row from before the classifier was named
    model_version: str = ""
    baseline: bool = False
    class_names: list[str]
    scores: list[float]
    score_kind: str = "probability"

    @model_validator(mode="before")
    @classmethod
    def _older_rows(cls, data: Any) -> Any:
        """Rows written before the rename keep "probabilities"; before the score kind, the baseline flag says it."""
        if isinstance(data, dict):
            if "scores" not in data and "probabilities" in data:
                data = {key: value for key, value in data.items() if key != "probabilities"} | {"scores": data["probabilities"]}
            if "score_kind" not in data:
                data = {**data, "score_kind": BASELINE_SCORE_KIND if data.get("baseline") else "probability"}
        return data


class Pattern(Frozen):
    """The opacity's distribution and the zone-based severity score (`pipelines/covid19/pattern.py` OpacityPattern)."""

    bilateral: bool
    peripheral_percent: float
    zone_distribution_percent: dict[str, float]
    consolidation_percent: float
    ground_glass_percent: float
    lesion_count: int
    largest_lesion_ml: float
    zone_involvement_percent: dict[str, float]
    zone_scores: dict[str, int]
    zone_based_severity_score: int
    lung_peripheral_percent: float = 0.0
    rounded_lesion_count: int = 0
    mass_like_lesion_count: int = 0
    largest_mass_like_ml: float = 0.0


class Covid19Manifest(ResultManifest):
    DEFAULT_OVERLAYS: ClassVar[tuple[Overlay, ...]] = OVERLAYS

    headline: Covid19Headline | None = None
    category: Category | None = None
    measurements: Measurements | None = None
    classification: Classification | None = None
    pattern: Pattern | None = None

    def one_line(self) -> str:
        """The headline; jobs done before the headline existed show their percentage of opacity."""
        if self.headline is None and self.measurements is not None and "total" in self.measurements.opacity_percent:
            return f"PO {shown(self.measurements.opacity_percent['total'], '%')}"
        return super().one_line()

    def log_line(self) -> str:
        """The headline, the lungs' volume, the fitness flags and the classifier's scores as display.py writes them."""
        parts = [self.one_line()]
        if self.measurements is not None and "total" in self.measurements.lung_volume_ml:
            parts.append(f"lungs {shown(self.measurements.lung_volume_ml['total'], 'mL')}")
        parts.append(f"fitness flags: {', '.join(flag.code for flag in self.fitness_flags) or 'none'}")
        if self.classification is not None:
            c = self.classification
            unit = c.score_kind if c.score_kind == "probability" else ""
            scores = ", ".join(f"{name} {shown(score, unit)}" for name, score in zip(c.class_names, c.scores))
            parts.append(f"{c.score_kind} {scores} ({c.model_name})")
        return "; ".join(parts)
