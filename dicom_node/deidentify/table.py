"""PS3.15 Table E.1-1 as data: which action the Basic Profile and each option take on an attribute.

The table is `table_e1_1.tsv` beside this module, written by `tools/confidentiality_table.py` from the standard's
edition it names; nothing here restates it. Action codes (PS3.15 E.3.1 / Table E.1-1 legend):
D dummy value, Z zero length (or a dummy), X remove, K keep, C clean, U replace the UID consistently;
a compound code (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) allows each, by the attribute's type in the object's IOD.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path

from pydicom.tag import BaseTag

TABLE = Path(__file__).with_name("table_e1_1.tsv")
PRIVATE = "gggg,eeee odd"


class Option(Enum):
    """The option columns of Table E.1-1, by their column names in the file, with their DCM code (CID 7050)."""

    RETAIN_SAFE_PRIVATE = ("rtnSafePrivOpt", "113111", "Retain Safe Private Option")
    RETAIN_UIDS = ("rtnUIDsOpt", "113110", "Retain UIDs Option")
    RETAIN_DEVICE_IDENTITY = ("rtnDevIdOpt", "113109", "Retain Device Identity Option")
    RETAIN_INSTITUTION_IDENTITY = ("rtnInstIdOpt", "113112", "Retain Institution Identity Option")
    RETAIN_PATIENT_CHARACTERISTICS = ("rtnPatCharsOpt", "113108", "Retain Patient Characteristics Option")
    RETAIN_LONGITUDINAL_FULL_DATES = ("rtnLongFullDatesOpt", "113106", "Retain Longitudinal Temporal Information Full Dates Option")
    RETAIN_LONGITUDINAL_MODIFIED_DATES = ("rtnLongModifDatesOpt", "113107", "Retain Longitudinal Temporal Information Modified Dates Option")
    CLEAN_DESCRIPTORS = ("cleanDescOpt", "113105", "Clean Descriptors Option")
    CLEAN_STRUCTURED_CONTENT = ("cleanStructContOpt", "113104", "Clean Structured Content Option")
    CLEAN_GRAPHICS = ("cleanGraphOpt", "113103", "Clean Graphics Option")

    def __init__(self, column: str, code: str, meaning: str) -> None:
        self.column = column
        self.code = code
        self.meaning = meaning


@dataclass(frozen=True)
class Rule:
    """One row of the table: the attribute, its Basic Profile action and its option entries."""

    tag: str  # GGGGEEEE, x for a repeating digit, or PRIVATE
    name: str
    basic: str
    options: dict[Option, str]

    def action(self, chosen: Iterable[Option]) -> str:
        """The action under the chosen options: an option's entry replaces the basic action.

        Where two chosen options both have an entry (Device UID under Retain UIDs and Retain Device Identity), the
        more permissive wins (K over C over X): each option states what may be kept.
        """
        entries = {self.options[option] for option in chosen if option in self.options}
        for action in ("K", "C", "X"):
            if action in entries:
                return action
        return self.basic


class ActionTable:
    """Rules by tag: exact tags, repeating groups (50xx, 60xx), and the rule for private attributes."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._exact = {int(rule.tag, 16): rule for rule in self.rules if "x" not in rule.tag and rule.tag != PRIVATE}
        self._masked = [
            (int(rule.tag.replace("x", "0"), 16), int("".join("0" if c == "x" else "F" for c in rule.tag), 16), rule)
            for rule in self.rules
            if "x" in rule.tag and rule.tag != PRIVATE
        ]
        self.private = next(rule for rule in self.rules if rule.tag == PRIVATE)
        self.edition = ""

    @staticmethod
    @cache
    def load(path: Path = TABLE) -> ActionTable:
        """The package's table (read once per process); ValueError names a malformed line."""
        lines = path.read_text().splitlines()
        header = lines[1].split("\t")
        columns = {option.column: option for option in Option}
        rules = []
        for number, line in enumerate(lines[2:], start=3):
            fields = line.split("\t")
            if len(fields) != len(header):
                raise ValueError(f"{path}:{number}: {len(fields)} fields, the header has {len(header)}")
            row = dict(zip(header, fields))
            options = {columns[name]: value for name, value in row.items() if name in columns and value}
            rules.append(Rule(row["tag"], row["name"], row["basic"], options))
        table = ActionTable(rules)
        table.edition = lines[0].removeprefix("# ")
        return table

    def rule(self, tag: BaseTag) -> Rule | None:
        """The rule for a (non-private) tag, or None when the table does not list it (then it is kept)."""
        if tag.is_private:
            return self.private
        rule = self._exact.get(int(tag))
        if rule is not None:
            return rule
        return next((rule for value, mask, rule in self._masked if int(tag) & mask == value), None)
