"""C-FIND attribute matching (PS3.4 C.2.2.2): one key's value in a query identifier, as a condition on a value.

Pure functions and values: `parse_key` reads what a key asks for (universal,
single value, wildcard, range, list of values), `KeyMatch.accepts` decides
whether an indexed value matches it, and `KeyMatch.clause` is the same
condition in SQL for the index to narrow the rows by (`store/catalogue.py`).
SQL only narrows: `accepts` has the last word on every row, so SQLite's
case-insensitive LIKE and PostgreSQL's case-sensitive one give the same
answers.

Case: PN values match case-insensitively (PS3.4 C.2.2.2.1 allows it, and
workstations send names in whatever case their user typed); every other value
exactly. Wildcards (`*`, `?`) apply to every VR but UI, dates and times;
ranges (`A-B`, `A-`, `-B`) to DA, TM and DT; a backslash-separated list is
matched as any of its values (list of UID matching, C.2.2.2.2, and the same
for other multi-valued keys such as ModalitiesInStudy). A value of `*` alone
is universal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, or_

Kind = Literal["universal", "single", "wildcard", "range", "list"]
RANGE_VRS = frozenset({"DA", "TM", "DT"})
NO_WILDCARD_VRS = RANGE_VRS | {"UI"}
LIKE_ESCAPE = "\\"


def _like_pattern(pattern: str) -> str:
    """A DICOM wildcard pattern as an SQL LIKE pattern (escape `\\`)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True)
class KeyMatch:
    """What one key of an identifier asks for; `values`: single and wildcard one, range (low, high; '' open), list any."""

    kind: Kind
    values: tuple[str, ...] = ()
    ignore_case: bool = False

    @property
    def universal(self) -> bool:
        return self.kind == "universal"

    def accepts(self, value: str | int | None) -> bool:
        """Whether an indexed value matches (an unknown value, None or '', matches only universal matching)."""
        if self.kind == "universal":
            return True
        text = "" if value is None else str(value)
        if self.kind == "range":
            low, high = self.values
            return bool(text) and (not low or text[: len(low)] >= low) and (not high or text[: len(high)] <= high)
        if self.kind == "wildcard":
            return _regex(self.values[0], self.ignore_case).fullmatch(text) is not None
        wanted = self.values
        if self.ignore_case:
            return text.casefold() in {value.casefold() for value in wanted}
        return text in wanted

    def clause(self, column: ColumnElement) -> ColumnElement[bool] | None:  # type: ignore[type-arg]
        """The condition in SQL (a superset of `accepts`); None: no condition (universal)."""
        if self.kind == "universal":
            return None
        target = func.lower(column) if self.ignore_case else column
        fold = (lambda text: text.lower()) if self.ignore_case else (lambda text: text)
        if self.kind == "range":
            low, high = self.values
            bounds = [column != ""]
            if low:
                bounds.append(column >= low)
            if high:
                bounds.append(column <= high + "\uffff")  # '20200101' also covers '20200101120000' (DT)
            return and_(*bounds)
        if self.kind == "wildcard":
            pattern = self.values[0]
            if set(pattern) <= {"*"}:
                return None
            return target.like(fold(_like_pattern(pattern)), escape=LIKE_ESCAPE)
        if len(self.values) == 1:
            return target == fold(self.values[0])
        return or_(*(target == fold(value) for value in self.values)) if self.ignore_case else column.in_(self.values)


UNIVERSAL = KeyMatch("universal")


def parse_key(value: object, vr: str) -> KeyMatch:
    """The matching a key's value asks for (a pydicom value of an element with this VR)."""
    if value is None:
        return UNIVERSAL
    several = isinstance(value, Sequence) and not isinstance(value, (str, bytes))  # pydicom's MultiValue
    values = [str(item) for item in value] if several else [str(value)]  # type: ignore[union-attr]
    values = [item.strip() for item in values if str(item).strip()]
    if not values or values == ["*"]:
        return UNIVERSAL
    ignore_case = vr == "PN"
    if len(values) == 1 and "\\" in values[0]:  # a multi-valued key pydicom left as one string (e.g. an odd VR)
        values = [item for item in values[0].split("\\") if item]
    if vr in RANGE_VRS and len(values) == 1 and "-" in values[0]:
        low, _, high = values[0].partition("-")
        return KeyMatch("range", (low.strip(), high.strip()))
    if len(values) == 1 and vr not in NO_WILDCARD_VRS and ("*" in values[0] or "?" in values[0]):
        return KeyMatch("wildcard", (values[0],), ignore_case)
    return KeyMatch("single" if len(values) == 1 else "list", tuple(values), ignore_case)
