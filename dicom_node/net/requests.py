"""Answer C-STORE requests that pynetdicom would silently drop, and let through the UIDs real archives send.

pynetdicom hands a request to its service class only when the request's
mandatory command fields are present (`C_STORE.is_valid_request`); one
without Affected SOP Instance UID (or SOP Class UID) is logged as "unexpected"
and never answered, so the sender waits for its network timeout (60 s) with
the association blocked. We see every decoded DIMSE message first, through the
public EVT_DIMSE_RECV notification, and answer such a request at once with
0xC211 and an ErrorComment naming what is missing; pynetdicom then drops it as
before. A request without a Message ID cannot be answered (the response must
name it): the association is aborted.

pynetdicom also aborts an association whose command carries a UID longer than
64 characters; archives send such UIDs (and UIDs with letters), and the node
stores them exactly as received, so the SCP validates command UIDs only for
being present (`configure_pynetdicom`).

tests/hostile/test_datasets.py fails if pynetdicom changes any of this (the
fields it requires, the hooks, or starts answering such requests itself).
"""

from __future__ import annotations

import logging

from pynetdicom import _config, evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE

from dicom_node.store.checks import MISSING_UIDS

log = logging.getLogger(__name__)

REQUIRED_FIELDS = {"MessageID": 0x00000110, "AffectedSOPClassUID": 0x00000002, "AffectedSOPInstanceUID": 0x00001000}


def any_uid(value: str) -> tuple[bool, str]:
    """pynetdicom's UID validator for the SCP: present is enough (the data set checks judge the rest)."""
    return (True, "") if value else (False, "must not be an empty str")


def configure_pynetdicom() -> None:
    """Process-wide pynetdicom settings the SCP needs; call before starting the server.

    Its standard DIMSE log handler raises on a C-STORE request without Affected SOP Instance UID, which ends the
    event's handler loop before `refuse_incomplete_store` runs; it also formats a dozen log lines per image. Our
    own log names every association and every refusal. Its Query/Retrieve service decodes and pretty-prints every
    request and response identifier for DEBUG lines whatever the log level (some 60 us per C-FIND match); the Q/R
    SCP logs each request's level and match count instead.
    """
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.VALIDATORS["UI"] = any_uid


def missing_fields(command: object) -> list[str]:
    """The mandatory C-STORE-RQ command fields absent or empty in `command` (a pydicom Dataset)."""
    missing = []
    for keyword, tag in REQUIRED_FIELDS.items():  # looked up by tag: by keyword costs several times more, per image
        element = command.get(tag)  # type: ignore[attr-defined]
        if element is None or element.value in (None, ""):
            missing.append(keyword)
    return missing


def refuse_incomplete_store(event: evt.Event) -> None:
    """EVT_DIMSE_RECV handler: answer (or abort) a C-STORE-RQ that lacks a mandatory command field."""
    message = event.message
    if not isinstance(message, C_STORE_RQ):
        return
    command = message.command_set
    missing = missing_fields(command)
    if not missing:
        return
    assoc = event.assoc
    peer = f"{str(assoc.requestor.ae_title).strip()}@{assoc.requestor.address}:{assoc.requestor.port}"
    if "MessageID" in missing:
        log.error("C-STORE request from %s without a Message ID: association aborted", peer)
        assoc.acse.send_abort(0x02)
        return
    comment = f"C-STORE request lacks {', '.join(missing)}"
    log.error("C-STORE request %s from %s refused (0x%04X): %s", command.MessageID, peer, MISSING_UIDS, comment)
    response = C_STORE()
    response.MessageIDBeingRespondedTo = command.MessageID
    if "AffectedSOPClassUID" not in missing:
        response.AffectedSOPClassUID = command.AffectedSOPClassUID
    response.Status = MISSING_UIDS
    response.ErrorComment = comment[:64]
    assoc.dimse.send_msg(response, message.context_id)
