"""A multi-frame object's per-frame items, with what repeats per source slice encoded once.

highdicom gives each SEG frame its own item of the Per-frame Functional Groups
Sequence: the frame's dimension index, its plane position and its derivation
from the source slice (four nested data sets). pydicom then writes each of those
element by element (P001: 375 frames, 0.2 s) after walking all of them for
ambiguous VRs. Two of the three sequences are the same for every frame of one
source slice: here they are encoded once per slice by pydicom's own writer and
kept as raw elements, which pydicom writes as they are, and the object is marked
as already in Explicit VR Little Endian so that pydicom does not parse them back
(the walk for ambiguous VRs runs over everything else, as it would have).
The bytes written are pydicom's (tests/output/test_frame_items.py).
"""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.tag import Tag

PER_FRAME = "PerFrameFunctionalGroupsSequence"
_SEQUENCE_HEADER = 12  # explicit VR: tag, "SQ", two reserved bytes, 32-bit length


class EncodedOnce:
    """Sequence elements encoded the first time their content (an object alive meanwhile) is seen."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], tuple[Any, DataElement | RawDataElement]] = {}

    def element(self, tag: int, content: Any, items: Any) -> DataElement | RawDataElement:
        """The sequence `tag` holding `items`, encoded once per `content` (kept, so its id stays its own)."""
        key = (tag, id(content))
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = (content, _raw_sequence(tag, items))
        return known[1]


def _raw_sequence(tag: int, items: Any) -> DataElement | RawDataElement:
    element = DataElement(tag, "SQ", items)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, element)
    encoded = buffer.getvalue()
    value = encoded[_SEQUENCE_HEADER:]
    if int.from_bytes(encoded[8:12], "little") != len(value):  # written with an undefined length: keep the element
        return element
    return RawDataElement(Tag(tag), "SQ", len(value), value, 0, False, True)


def ready_to_write(dataset: Dataset) -> None:
    """Resolve the ambiguous VRs outside the per-frame items and mark the object and those items as encoded.

    The per-frame items hold only elements of known VR (highdicom's and the raw ones above).
    """
    frames = list(dataset.get(PER_FRAME, []))
    if PER_FRAME in dataset:
        del dataset[PER_FRAME]
    correct_ambiguous_vr(dataset, True)
    for tag in list(dataset.keys()):
        dataset[tag]  # a raw element read from a source file becomes a DataElement of its dictionary VR
    if frames:
        dataset.PerFrameFunctionalGroupsSequence = frames
    for item in [dataset, *frames]:
        item.set_original_encoding(False, True, item._character_set)
