"""C-STORE responses encoded directly, in the bytes pynetdicom would send.

pynetdicom sends a response by converting the primitive into a message (a
pydicom command Dataset filled element by element), encoding that Dataset
with pydicom's writer and cutting it into P-DATA primitives: about a fifth of
the interpreter-lock time of a received image, before the sender may send the
next one. A C-STORE-RSP is a handful of fixed elements, so `StoreResponseDIMSE`
writes the same bytes with `struct` (group 0000, implicit VR little endian, in
tag order, each value padded to even length as pydicom pads it) and hands the
DUL the same single P-DATA. Anything else (another message, an attribute this
encoder does not write, a handler bound to EVT_DIMSE_SENT, a PDU limit too
small for one fragment) takes pynetdicom's way. tests/hostile/test_pynetdicom_hooks.py
compares the bytes of both ways and the pynetdicom code this mirrors.
"""

from __future__ import annotations

import struct
from typing import Any

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

C_STORE_RSP = 0x8001
NO_DATA_SET = 0x0101
COMMAND_LAST_FRAGMENT = b"\x03"  # message control header: command, last fragment
_OTHER_FIELDS = ("OffendingElement",)  # allowed in a C-STORE-RSP, not written here: pynetdicom's way


def _element(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, tag, len(value)) + value


def _text(value: str, pad: bytes) -> bytes | None:
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError:
        return None
    return data + pad * (len(data) % 2)


def encode_store_response(response: C_STORE) -> bytes | None:
    """The encoded command set of a C-STORE-RSP, or None if it holds what this encoder does not write."""
    if any(getattr(response, name, None) is not None for name in _OTHER_FIELDS):
        return None
    elements: list[bytes] = []
    if response.AffectedSOPClassUID is not None:
        sop_class = _text(str(response.AffectedSOPClassUID), b"\0")
        if sop_class is None:
            return None
        elements.append(_element(0x0002, sop_class))
    elements.append(_element(0x0100, struct.pack("<H", C_STORE_RSP)))
    elements.append(_element(0x0120, struct.pack("<H", response.MessageIDBeingRespondedTo)))
    elements.append(_element(0x0800, struct.pack("<H", NO_DATA_SET)))
    elements.append(_element(0x0900, struct.pack("<H", response.Status)))
    if response.ErrorComment is not None:
        comment = _text(str(response.ErrorComment), b" ")
        if comment is None:
            return None
        elements.append(_element(0x0902, comment))
    if response.AffectedSOPInstanceUID is not None:
        sop_instance = _text(str(response.AffectedSOPInstanceUID), b"\0")
        if sop_instance is None:
            return None
        elements.append(_element(0x1000, sop_instance))
    body = b"".join(elements)
    return _element(0x0000, struct.pack("<L", len(body))) + body


class StoreResponseDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, sending C-STORE responses through `encode_store_response`."""

    def send_msg(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, C_STORE) and primitive.MessageIDBeingRespondedTo is not None:
            command = encode_store_response(primitive)
            limit = self.maximum_pdu_size
            fits = command is not None and (limit == 0 or len(command) + 6 <= limit)
            if fits and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
                pdata = P_DATA()
                pdata.presentation_data_value_list.append((context_id, COMMAND_LAST_FRAGMENT + command))  # type: ignore[operator]
                self.dul.send_pdu(pdata)
                return
        super().send_msg(primitive, context_id)


def fast_store_responses(dimse: DIMSEServiceProvider) -> None:
    """Make an association's DIMSE provider send C-STORE responses through `StoreResponseDIMSE`."""
    dimse.__class__ = StoreResponseDIMSE
