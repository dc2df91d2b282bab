"""highdicom's tables of the standard: loaded once when the node starts, and each question answered once.

highdicom reads its IOD, module and attribute tables (JSON) on first use,
0.5 s in every new process, and answers "is attribute A part of the IOD of
SOP class C" by scanning every attribute of every module of that IOD.  It asks
this for every source image of a SEG (is the image multi-frame?): 148 scans
for P001, as long as the rest of the SEG together.  The answer depends on the
two arguments only, so it is memoized.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from highdicom import _standard_utils

_scan = _standard_utils.is_attribute_in_iod


@lru_cache(maxsize=1024)
def _answer(attribute: str, sop_class_uid: str, exclude_path_elements: tuple[str, ...] | None) -> bool:
    return _scan(attribute, sop_class_uid, list(exclude_path_elements) if exclude_path_elements is not None else None)


def _memoized(attribute: str, sop_class_uid: str, exclude_path_elements: Sequence[str] | None = None) -> bool:
    excluded = tuple(exclude_path_elements) if exclude_path_elements is not None else None
    return _answer(attribute, str(sop_class_uid), excluded)


def prepare() -> None:
    """Load the tables now and memoize the IOD look-ups (idempotent)."""
    _standard_utils.get_sop_class_iod_map()
    _standard_utils.get_iod_module_map()
    _standard_utils.get_module_attribute_map()
    # is_multiframe_image and does_iod_have_pixel_data look the function up in their module at each call.
    _standard_utils.is_attribute_in_iod = _memoized
