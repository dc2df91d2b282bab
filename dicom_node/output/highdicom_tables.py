"""highdicom's tables of the standard: loaded once when the node starts, and each question answered once.

highdicom reads its IOD, module and attribute tables (JSON) on first use,
0.5 s in every new process, and answers "is attribute A part of the IOD of
SOP class C" by scanning every attribute of every module of that IOD.  It asks
this for every source image of a SEG (is the image multi-frame?): 148 scans
for P001, as long as the rest of the SEG together.  The answer depends on the
two arguments only, so it is memoized.

The module table holds about 100,000 attribute entries, half of them repeated
across modules (a code sequence's items, say); parsed as they are, they take 66
MiB of every process that writes results.  Loaded with each distinct entry held
once and its strings interned, the tables take 50 MiB.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from highdicom import _standard_utils

_scan = _standard_utils.is_attribute_in_iod


@lru_cache(maxsize=1024)
def _answer(attribute: str, sop_class_uid: str, exclude_path_elements: tuple[str, ...] | None) -> bool:
    return _scan(attribute, sop_class_uid, list(exclude_path_elements) if exclude_path_elements is not None else None)


def _memoized(attribute: str, sop_class_uid: str, exclude_path_elements: Sequence[str] | None = None) -> bool:
    excluded = tuple(exclude_path_elements) if exclude_path_elements is not None else None
    return _answer(attribute, str(sop_class_uid), excluded)


def compact_loads(text: str) -> Any:
    """`json.loads`, with equal attribute entries ({"keyword", "path", "type"}) shared and their strings interned."""
    shared: dict[tuple[Any, ...], dict[str, Any]] = {}

    def share(entry: dict[str, Any]) -> dict[str, Any]:
        if "keyword" not in entry:
            return entry
        key = tuple((name, tuple(value) if isinstance(value, list) else value) for name, value in entry.items())
        known = shared.get(key)
        if known is None:
            known = shared[key] = {
                name: [sys.intern(v) for v in value] if isinstance(value, list) else sys.intern(value) if isinstance(value, str) else value
                for name, value in entry.items()
            }
        return known

    return json.loads(text, object_hook=share)


@contextmanager
def _compact_json() -> Iterator[None]:
    """highdicom's table loaders parse with `compact_loads` (they call their module's `json.loads`)."""
    original = _standard_utils.json
    _standard_utils.json = SimpleNamespace(loads=compact_loads)  # type: ignore[assignment]
    try:
        yield
    finally:
        _standard_utils.json = original


@lru_cache(maxsize=1)
def _load_compactly() -> None:
    """Load the tables once per process, compactly, even if something used highdicom (and so loaded them) before."""
    loaders = (_standard_utils.get_sop_class_iod_map, _standard_utils.get_iod_module_map, _standard_utils.get_module_attribute_map)
    with _compact_json():
        for loader in loaders:
            loader.cache_clear()
            loader()


def prepare() -> None:
    """Load the tables now (compactly) and memoize the IOD look-ups (idempotent)."""
    _load_compactly()
    # is_multiframe_image and does_iod_have_pixel_data look the function up in their module at each call.
    _standard_utils.is_attribute_in_iod = _memoized
