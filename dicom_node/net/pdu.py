"""What a received PDU may claim before its body is read (PS3.8 section 9.3), and the PDUs we answer with.

Every PDU starts with a 6-byte header: type, a reserved byte, and the length
of what follows. The header is all a peer needs to make a receiver allocate
memory, so the node judges it before reading the body: a P-DATA-TF may be as
long as the maximum length we announced in the A-ASSOCIATE-AC, every other
PDU at most `MAX_ASSOCIATION_PDU`, and unknown types are refused outright.
Before an association exists, only an A-ASSOCIATE-RQ is acceptable.

Pure functions over bytes: the front door (`frontdoor.py`), the guarded DUL
(`guard.py`) and the fuzz tests share them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pynetdicom.pdu import A_ASSOCIATE_RQ

HEADER_LENGTH = 6
PDV_ITEM_HEAD = struct.Struct(">LBB").unpack_from  # a P-DATA-TF's value item: length, presentation context ID, message control header
COMMAND_FRAGMENT = 0x01  # message control header bit 0: a fragment of a command (else of a data set)
LAST_FRAGMENT = 0x02  # message control header bit 1: the last fragment of its command or data set
ASSOCIATE_RQ = 0x01
REJECT = 0x03
P_DATA_TF = 0x04
ABORT = 0x07
PDU_NAMES = {
    0x01: "A-ASSOCIATE-RQ",
    0x02: "A-ASSOCIATE-AC",
    0x03: "A-ASSOCIATE-RJ",
    0x04: "P-DATA-TF",
    0x05: "A-RELEASE-RQ",
    0x06: "A-RELEASE-RP",
    0x07: "A-ABORT",
}
# An A-ASSOCIATE-RQ proposing 128 presentation contexts of 16 transfer syntaxes, every UID 64 characters long,
# is about 150 KiB; nothing a real peer sends comes near this.
MAX_ASSOCIATION_PDU = 256 * 1024
# Protocol version, reserved, called AE, calling AE, reserved: the fixed part of an A-ASSOCIATE-RQ (PS3.8 9.3.2).
MIN_ASSOCIATE_RQ = 68
# `dicom.max_pdu = 0` announces no limit; a P-DATA-TF is still never buffered beyond this.
UNANNOUNCED_PDATA_LIMIT = 64 * 2**20

# A-ABORT reasons of the service provider (PS3.8 table 9-26).
UNRECOGNIZED_PDU = 0x01
UNEXPECTED_PDU = 0x02
INVALID_PARAMETER_VALUE = 0x06


def abort_pdu(reason: int) -> bytes:
    """An A-ABORT from the service provider (source 2) with `reason`."""
    return struct.pack(">BxLxxBB", ABORT, 4, 0x02, reason)


def reject_pdu(result: int, source: int, diagnostic: int) -> bytes:
    """An A-ASSOCIATE-RJ (PS3.8 table 9-21)."""
    return struct.pack(">BxLxBBB", REJECT, 4, result, source, diagnostic)


@dataclass(frozen=True)
class Refusal:
    """Why a PDU is not read: the sentence for the log and the PDU answered before closing (empty: none)."""

    reason: str
    answer: bytes = b""


def parse_header(header: bytes) -> tuple[int, int]:
    """(PDU type, length of the body) of a 6-byte header."""
    pdu_type, length = struct.unpack(">BxL", header)
    return pdu_type, length


def _name(pdu_type: int) -> str:
    return PDU_NAMES.get(pdu_type, f"unknown PDU type 0x{pdu_type:02X}")


def check_header(pdu_type: int, length: int, max_pdata_length: int) -> Refusal | None:
    """Inside an association: None if a PDU with this header may be read into memory.

    `max_pdata_length` is the maximum length we announced (0: none announced).
    """
    if pdu_type not in PDU_NAMES:
        return Refusal(f"{_name(pdu_type)} (claims {length} bytes)", abort_pdu(UNRECOGNIZED_PDU))
    limit = (max_pdata_length or UNANNOUNCED_PDATA_LIMIT) if pdu_type == P_DATA_TF else MAX_ASSOCIATION_PDU
    if length > limit:
        return Refusal(f"{_name(pdu_type)} claims {length} bytes, more than the {limit} we accept", abort_pdu(INVALID_PARAMETER_VALUE))
    return None


def check_request_header(pdu_type: int, length: int) -> Refusal | None:
    """Before an association: None if this header can start a sane A-ASSOCIATE-RQ."""
    if pdu_type == ABORT:
        return Refusal("A-ABORT instead of an A-ASSOCIATE-RQ")
    if pdu_type != ASSOCIATE_RQ:
        reason = UNEXPECTED_PDU if pdu_type in PDU_NAMES else UNRECOGNIZED_PDU
        return Refusal(f"{_name(pdu_type)} (claims {length} bytes) instead of an A-ASSOCIATE-RQ", abort_pdu(reason))
    if not MIN_ASSOCIATE_RQ <= length <= MAX_ASSOCIATION_PDU:
        return Refusal(
            f"A-ASSOCIATE-RQ claims {length} bytes (accepted: {MIN_ASSOCIATE_RQ} to {MAX_ASSOCIATION_PDU})",
            abort_pdu(INVALID_PARAMETER_VALUE),
        )
    return None


def check_request(pdu: bytes) -> Refusal | None:
    """None if `pdu` (header and body) is an A-ASSOCIATE-RQ pynetdicom can negotiate.

    Decoded here, in the front door, because pynetdicom's DUL thread dies on a
    request it cannot turn into a primitive and its association thread then
    waits the whole ACSE timeout for it, holding an association slot.
    """
    request = A_ASSOCIATE_RQ()
    try:
        request.decode(pdu)
        request.to_primitive()
    except Exception as exc:  # any decoding failure of peer data
        return Refusal(f"malformed A-ASSOCIATE-RQ ({type(exc).__name__}: {exc})", abort_pdu(INVALID_PARAMETER_VALUE))
    if request.protocol_version != 0x0001:  # pynetdicom would reject it, then wait for the ACSE timeout
        # permanent, service provider (ACSE), protocol version not supported
        return Refusal(f"A-ASSOCIATE-RQ of protocol version 0x{request.protocol_version:04X}", reject_pdu(0x01, 0x02, 0x02))
    return None

