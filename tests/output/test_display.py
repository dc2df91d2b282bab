"""One rounding and one way of writing each number, wherever it is shown (output/display.py)."""

from __future__ import annotations

import random
import re
from pathlib import Path

from dicom_node.cli import _result_text
from dicom_node.output.display import PRECISION, rounded, shown
from dicom_node.output.summary import SummaryRow

SERIES_JS = Path(__file__).resolve().parents[2] / "dicom_node" / "web" / "static" / "series.js"


def test_values_are_written_with_their_unit_at_their_precision() -> None:
    assert shown(6131.46, "mL") == "6131.5 mL"
    assert shown(12.3456, "%") == "12.35 %"
    assert shown(0.8912, "probability") == "89.1 %"
    assert shown(0.25, "") == "0.250"


def test_a_stored_value_reads_as_the_raw_value_does_no_rounding_twice() -> None:
    """Results store `rounded` values; the page, the summary page and the log show them: the same text."""
    rng = random.Random(29)
    for _ in range(20000):
        value = rng.uniform(0, 8000)
        for unit in ("mL", "%"):
            assert shown(rounded(value, unit), unit) == shown(value, unit), (value, unit)
        probability = rng.random()
        assert shown(rounded(probability, ""), "probability") == shown(probability, "probability")


def test_the_summary_page_the_cli_and_the_web_page_agree() -> None:
    raw = 6131.46
    assert SummaryRow("Lung volume", "mL", {"total": rounded(raw, "mL")}).cell("total") == "6131.5 mL"
    result = {"classification": {"class_names": ["non-COVID", "COVID-19"], "probabilities": [0.109, 0.891]},
              "measurements": {"opacity_percent": {"total": 23.456}}}
    assert _result_text("covid19_ct", result) == "PO 23.46 %"  # a job done before the headline existed: its PO, as display.py writes it
    script = SERIES_JS.read_text()
    table = re.findall(r'\["(\w+)", "([^"]+)", (\d)\]', script)
    units = {"lung_volume_ml": "mL", "opacity_volume_ml": "mL", "opacity_percent": "%", "high_opacity_percent": "%"}
    assert {key: int(digits) for key, _, digits in table} == {key: PRECISION[unit] for key, unit in units.items()}
    assert all("(mL)" in label for key, label, _ in table if units[key] == "mL") and "(ml)" not in script
    assert "(100 * p).toFixed(1)" in script  # probabilities as the summary page writes them
