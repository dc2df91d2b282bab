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

from dicom_node.net.pdu import P_DATA_TF

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


def encode_store_response(
    message_id: int, status: int, comment: str | None, sop_class: str | None, sop_instance: str | None
) -> bytes | None:
    """The encoded command set of a C-STORE-RSP, or None if a value is one this encoder does not write (non-ASCII)."""
    elements: list[bytes] = []
    if sop_class is not None:
        sop_class_value = _text(str(sop_class), b"\0")
        if sop_class_value is None:
            return None
        elements.append(_element(0x0002, sop_class_value))
    elements.append(_element(0x0100, struct.pack("<H", C_STORE_RSP)))
    elements.append(_element(0x0120, struct.pack("<H", message_id)))
    elements.append(_element(0x0800, struct.pack("<H", NO_DATA_SET)))
    elements.append(_element(0x0900, struct.pack("<H", status)))
    if comment is not None:
        comment_value = _text(str(comment), b" ")
        if comment_value is None:
            return None
        elements.append(_element(0x0902, comment_value))
    if sop_instance is not None:
        sop_instance_value = _text(str(sop_instance), b"\0")
        if sop_instance_value is None:
            return None
        elements.append(_element(0x1000, sop_instance_value))
    body = b"".join(elements)
    return _element(0x0000, struct.pack("<L", len(body))) + body


def response_pdu(context_id: int, command: bytes) -> bytes:
    """The P-DATA-TF PDU pynetdicom sends for a command set that fits one fragment: one PDV, command, last fragment."""
    item = struct.pack(">LB", len(command) + 2, context_id) + COMMAND_LAST_FRAGMENT + command
    return struct.pack(">BxL", P_DATA_TF, len(item)) + item


def fits_one_fragment(command: bytes, max_pdu: int) -> bool:
    """Does the command go in one P-DATA-TF to a peer whose maximum PDU length is `max_pdu` (0: no limit)?"""
    return max_pdu == 0 or len(command) + 6 <= max_pdu


def _has_other_fields(response: C_STORE) -> bool:
    return any(getattr(response, name, None) is not None for name in _OTHER_FIELDS)


class StoreResponseDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider, sending C-STORE responses through `encode_store_response`."""

    def send_msg(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, C_STORE) and primitive.MessageIDBeingRespondedTo is not None and not _has_other_fields(primitive):
            command = encode_store_response(
                primitive.MessageIDBeingRespondedTo, primitive.Status, primitive.ErrorComment,
                primitive.AffectedSOPClassUID, primitive.AffectedSOPInstanceUID,
            )
            fits = command is not None and fits_one_fragment(command, self.maximum_pdu_size)
            if fits and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT):
                pdata = P_DATA()
                pdata.presentation_data_value_list.append((context_id, COMMAND_LAST_FRAGMENT + command))  # type: ignore[operator]
                self.dul.send_pdu(pdata)
                return
        super().send_msg(primitive, context_id)


def fast_store_responses(dimse: DIMSEServiceProvider) -> None:
    """Make an association's DIMSE provider send C-STORE responses through `StoreResponseDIMSE`."""
    dimse.__class__ = StoreResponseDIMSE
