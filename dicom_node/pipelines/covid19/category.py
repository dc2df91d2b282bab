"""The RSNA expert-consensus reporting category for COVID-19 pneumonia on CT, from the opacity pattern.

Simpson S, Kay FU, Abbara S, et al. Radiological Society of North America Expert Consensus
Statement on Reporting Chest CT Findings Related to COVID-19. Endorsed by the Society of
Thoracic Radiology, the American College of Radiology, and RSNA. Radiology: Cardiothoracic
Imaging 2020;2(2):e200152. Four categories:

- typical appearance: peripheral, bilateral ground-glass opacity (GGO) with or without
  consolidation; multifocal GGO of rounded morphology with or without consolidation;
  (reverse halo sign: not measured here);
- indeterminate appearance: no typical feature, and multifocal, diffuse, perihilar or
  unilateral GGO with or without consolidation lacking a specific distribution;
- atypical appearance: isolated lobar or segmental consolidation without GGO; discrete
  small nodules; cavitation; smooth septal thickening with effusion;
- negative for pneumonia: no CT feature to suggest pneumonia.

The node derives the category from what it measures (`pattern.py`), each criterion
reported as met or not with its figures, so a reader sees why:

| criterion | met when |
|---|---|
| opacity above the detection floor | opacity volume >= `DETECTION_FLOOR_ML` |
| bilateral | each lung holds >= 1 mL of opacity |
| peripheral predominance | the opacity's share in the outer third of the lungs exceeds the lungs' own share there |
| ground-glass predominance | ground glass >= 50% of the opacity volume |
| multifocal | >= 2 lesions |
| rounded lesions | >= 1 rounded ground-glass lesion (`pattern.ROUNDED_MIN`) |
| lower-zone predominance | the lower zones hold the largest share (shown; RSNA's rules do not use it) |
| solitary solid mass-like lesion | exactly one mass-like lesion (`pattern.mass_like`) |
| isolated consolidation | one lung only, consolidation >= 50% of the opacity |

Rules, in this order: no opacity above the floor -> negative; a solitary mass-like lesion
or isolated consolidation -> atypical; ground-glass predominance with (bilateral and
peripheral) or (multifocal and rounded) -> typical; anything else -> indeterminate.

Two departures from the statement, both because of what a voxel count can see: the floor
(the node's false positives on lungs without pneumonia reach 11-13 mL, LIDC-IDRI-0002, so less
opacity than `DETECTION_FLOOR_ML` is not told apart from them: "negative" then means none
above the floor; the floor sits inside the range 12-120 mL where every shared scan keeps its
category, about twice the worst false positive and a quarter of P001's opacity), and the order (an atypical feature is checked before typical ones: a
tumour with ground glass around it otherwise reads as typical, and the node cannot see the
finer signs, crazy paving or reverse halo, that would make a radiologist call it typical
regardless). Lobes and segments are not segmented: "isolated lobar or segmental
consolidation" is approximated by consolidation-predominant opacity confined to one lung.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from dicom_node.pipeline.pattern import BILATERAL_MIN_ML, OpacityPattern

DETECTION_FLOOR_ML = 30.0  # the categories of the six shared scans hold from 12 to 120 mL (docs/validation.md)
GROUND_GLASS_MIN_PERCENT = 50.0
CONSOLIDATION_MIN_PERCENT = 50.0
SOURCE = "Simpson et al., Radiology: Cardiothoracic Imaging 2020;2(2):e200152 (RSNA, endorsed by STR and ACR)"
CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")


class RsnaCategory(str, Enum):
    """The four categories; the value is the stable key in JSON and CSV."""

    TYPICAL = "typical"
    INDETERMINATE = "indeterminate"
    ATYPICAL = "atypical"
    NEGATIVE = "negative"

    @property
    def title(self) -> str:
        return {
            "typical": "Typical appearance",
            "indeterminate": "Indeterminate appearance",
            "atypical": "Atypical appearance",
            "negative": "Negative for pneumonia",
        }[self.value]


@dataclass(frozen=True)
class Criterion:
    """One criterion of the category: met or not, and the figures that decided it, in words."""

    code: str  # stable key, also the private SR code value
    title: str  # e.g. "Bilateral opacity" (the SR code meaning, at most 64 characters)
    met: bool
    detail: str  # e.g. "right 80.1 mL, left 41.7 mL (at least 1 mL each)"

    def __post_init__(self) -> None:
        if not CODE_PATTERN.match(self.code) or not 0 < len(self.title) <= 64 or not self.detail:
            raise ValueError(f"criterion {self.code!r} ({self.title!r}): a code, a title of 1-64 characters and a detail")


@dataclass(frozen=True)
class RsnaAssessment:
    """The category, the rule that gave it and every criterion."""

    category: RsnaCategory
    rule: str  # the rule that decided, in words
    criteria: tuple[Criterion, ...]

    def met(self, code: str) -> bool:
        return next(c.met for c in self.criteria if c.code == code)

    def as_dict(self) -> dict[str, object]:
        return {
            "category": self.category.value,
            "title": self.category.title,
            "rule": self.rule,
            "source": SOURCE,
            "criteria": [{"code": c.code, "title": c.title, "met": c.met, "detail": c.detail} for c in self.criteria],
        }

    @classmethod
    def from_dict(cls, value: dict) -> RsnaAssessment:
        return cls(
            category=RsnaCategory(value["category"]),
            rule=str(value["rule"]),
            criteria=tuple(Criterion(c["code"], c["title"], bool(c["met"]), c["detail"]) for c in value["criteria"]),
        )


def rsna_category(pattern: OpacityPattern, opacity_ml: dict[str, float]) -> RsnaAssessment:
    """The category of one scan from its opacity pattern and opacity volumes ("right", "left", "total", mL)."""
    total, right, left = opacity_ml["total"], opacity_ml["right"], opacity_ml["left"]
    zones = pattern.zone_distribution_percent
    others = max(zones["upper"], zones["middle"])
    criteria = (
        Criterion("OPACITY", "Opacity above the detection floor", total >= DETECTION_FLOOR_ML,
                  f"{total:.1f} mL of opacity (at least {DETECTION_FLOOR_ML:g} mL)"),
        Criterion("BILATERAL", "Bilateral opacity", pattern.bilateral,
                  f"right {right:.1f} mL, left {left:.1f} mL (at least {BILATERAL_MIN_ML:g} mL each)"),
        Criterion("PERIPHERAL", "Peripheral predominance",
                  pattern.peripheral_percent > pattern.lung_peripheral_percent and total > 0,
                  f"{pattern.peripheral_percent:.0f}% of the opacity in the outer third of the lungs, which hold "
                  f"{pattern.lung_peripheral_percent:.0f}% of the lung volume"),
        Criterion("GROUNDGLASS", "Ground-glass predominance",
                  total > 0 and pattern.ground_glass_percent >= GROUND_GLASS_MIN_PERCENT,
                  f"ground glass {pattern.ground_glass_percent:.0f}% of the opacity (at least {GROUND_GLASS_MIN_PERCENT:g}%)"),
        Criterion("MULTIFOCAL", "Multifocal opacity", pattern.lesion_count >= 2, f"{pattern.lesion_count} lesion(s)"),
        Criterion("ROUNDED", "Rounded ground-glass lesions", pattern.rounded_lesion_count >= 1,
                  f"{pattern.rounded_lesion_count} rounded ground-glass lesion(s)"),
        Criterion("LOWERZONE", "Lower-zone predominance", total > 0 and zones["lower"] > others,
                  f"lower zones {zones['lower']:.0f}%, upper {zones['upper']:.0f}%, middle {zones['middle']:.0f}% "
                  "of the opacity (shown, not used by the rules)"),
        Criterion("SOLITARYMASS", "Solitary solid mass-like lesion", pattern.mass_like_lesion_count == 1,
                  f"{pattern.mass_like_lesion_count} mass-like lesion(s)"
                  + (f", {pattern.largest_mass_like_ml:.1f} mL" if pattern.mass_like_lesion_count else "")),
        Criterion("ISOLATEDCONS", "Isolated consolidation",
                  total > 0 and not pattern.bilateral and pattern.consolidation_percent >= CONSOLIDATION_MIN_PERCENT,
                  f"{'one lung' if not pattern.bilateral else 'both lungs'}, consolidation "
                  f"{pattern.consolidation_percent:.0f}% of the opacity (at least {CONSOLIDATION_MIN_PERCENT:g}% in one lung)"),
    )
    met = {c.code: c.met for c in criteria}
    if not met["OPACITY"]:
        category, rule = RsnaCategory.NEGATIVE, "no opacity above the detection floor"
    elif met["SOLITARYMASS"] or met["ISOLATEDCONS"]:
        category, rule = RsnaCategory.ATYPICAL, (
            "a solitary solid mass-like lesion" if met["SOLITARYMASS"] else "isolated consolidation"
        )
    elif met["GROUNDGLASS"] and met["BILATERAL"] and met["PERIPHERAL"]:
        category, rule = RsnaCategory.TYPICAL, "bilateral, peripheral, ground-glass predominant opacity"
    elif met["GROUNDGLASS"] and met["MULTIFOCAL"] and met["ROUNDED"]:
        category, rule = RsnaCategory.TYPICAL, "multifocal ground glass of rounded morphology"
    else:
        category, rule = RsnaCategory.INDETERMINATE, "opacity without a typical or atypical feature"
    return RsnaAssessment(category, rule, criteria)
