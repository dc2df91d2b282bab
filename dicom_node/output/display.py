"""Every number a person reads, rounded once and written with its unit, the same way everywhere.

The result files keep each value at its clinical precision (`rounded`: 0.1 mL, 0.01 %, probabilities 0.001;
more digits are noise of the voxel count). What the log, the command line, the web page and the summary page
show is that same value written at that same precision (`shown`), so one measurement reads the same in all of
them: before, the lung volume was 6131 in the log (the raw value to whole mL), 6132 on the page (the stored
6131.5 rounded again) and 6131.5 on the summary page. The page's script uses the digits of `PRECISION`
(a test compares them). A light module: the CLI and the web app import it without the pipeline.
"""

from __future__ import annotations

PRECISION = {"mL": 1, "%": 2, "": 3}  # decimals per unit ("" : probabilities and other unitless values)
PROBABILITY_PERCENT_DIGITS = PRECISION[""] - 2  # a probability of 0.891 is shown as 89.1 %


def rounded(value: float, unit: str) -> float:
    """`value` at the clinical precision of `unit` ("mL", "%" or "" for unitless values): what results store."""
    return round(float(value), PRECISION[unit])


def shown(value: float, unit: str) -> str:
    """`value` as a person reads it: rounded once with `rounded`, then written with its unit ("6131.5 mL",
    "12.34 %"); unit "probability" writes a probability as a percentage ("89.1 %")."""
    if unit == "probability":
        return f"{100 * rounded(value, ''):.{PROBABILITY_PERCENT_DIGITS}f} %"
    return f"{rounded(value, unit):.{PRECISION[unit]}f}{' ' + unit if unit else ''}"
