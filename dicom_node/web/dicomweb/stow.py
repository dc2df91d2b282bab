"""STOW-RS (PS3.18 10.5): store instances sent as multipart/related; type="application/dicom".

Each part is a PS3.10 file; its data set goes through the same receive path as a
C-STORE (`store/receive.py`: disk guard, identifiers, duplicate policy, fsync,
index row) before the response is sent, and the file is stored as it came (its
own preamble and file meta). One request acts like one association: its series
are queued for their jobs once it has ended, as after a released association.

Answers: 200 all stored; 202 some failed, 409 all failed (each failure in the
Failed SOP Sequence with its Failure Reason, the receive path's status, and an
Error Comment saying why); 400 for a body that is not a multipart message of
PS3.10 files, or a part that is not one (nothing of that request is stored);
413 for a body over `http.max_stow_mb` (refused before it is read, when its length is
declared); 503 (Retry-After) when the node's memory for peers (`dicom.peer_memory_mb`, shared with the
associations in progress) has no room for the body, before that part of it is read; 415 for another content type.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicom_node.net.multipart import BadMultipart, Part10, media_type_parameters, read_part10, split_parts
from dicom_node.peer_memory import STEP, PeerMemory
from dicom_node.store.ingest import Indexer
from dicom_node.store.jobs import JobQueue
from dicom_node.store.receive import Outcome, Receiver
from dicom_node.web.context import WebContext, get_context
from dicom_node.web.dicomweb.wado import base_url

log = logging.getLogger(__name__)
router = APIRouter()
ContextDep = Annotated[WebContext, Depends(get_context)]
CALLING_AE = "STOW-RS"


def parse_body(content_type: str, body: bytes) -> list[Part10]:
    media, params = media_type_parameters(content_type)
    if media != "multipart/related" or params.get("type", "application/dicom").lower() != "application/dicom":
        raise HTTPException(415, 'STOW-RS takes multipart/related; type="application/dicom" (PS3.10 files)')
    try:
        parts = split_parts(body, params.get("boundary", ""))
        for number, part in enumerate(parts, 1):
            part_media, _ = media_type_parameters(part.content_type or "application/dicom")
            if part_media != "application/dicom":
                raise BadMultipart(f"part {number} is {part_media}, not application/dicom")
        return [read_part10(part.body, number) for number, part in enumerate(parts, 1)]
    except BadMultipart as exc:
        raise HTTPException(400, str(exc)) from exc


def receiver(context: WebContext, request: Request) -> Receiver:
    """One receive path per app, over the app's database (made on first use)."""
    state = request.app.state
    if getattr(state, "stow_receiver", None) is None:
        queue = JobQueue(context.sessions, context.config.node.name)
        state.stow_receiver = Receiver(context.config.dicom, context.data_dir, Indexer(context.sessions, context.config.job_sop_classes()), queue)
    return state.stow_receiver  # type: ignore[no-any-return]


def store_all(receiver: Receiver, context: WebContext, parts: list[Part10], study: str | None, host: str, port: int) -> list[Outcome]:
    """Store the parts as one batch (an association row, 'released' at the end) and return each one's outcome."""
    called = context.config.dicom.called_aes[0]
    batch = receiver.open(CALLING_AE, called.ae_title, host, port, called.pipelines)
    how = "aborted"
    try:
        outcomes = []
        for part in parts:
            announced = (str(part.meta.get("MediaStorageSOPClassUID", "")), str(part.meta.get("MediaStorageSOPInstanceUID", "")))
            outcomes.append(receiver.store(batch, part.header, part.dataset, str(part.meta.TransferSyntaxUID), announced, study))
        how = "released"
        return outcomes
    finally:
        receiver.close(batch, how)


def response_body(root: str, parts: list[Part10], outcomes: list[Outcome], study: str | None) -> Dataset:
    ds = Dataset()
    stored, failed = Sequence(), Sequence()
    studies = set()
    for part, outcome in zip(parts, outcomes):
        meta = outcome.meta
        item = Dataset()
        item.ReferencedSOPClassUID = meta.sop_class_uid if meta else part.meta.get("MediaStorageSOPClassUID", "")
        item.ReferencedSOPInstanceUID = meta.sop_instance_uid if meta else part.meta.get("MediaStorageSOPInstanceUID", "")
        if outcome.ok and meta is not None:
            studies.add(meta.study_instance_uid)
            item.RetrieveURL = f"{root}/studies/{meta.study_instance_uid}/series/{meta.series_instance_uid}/instances/{meta.sop_instance_uid}"
            stored.append(item)
        else:
            item.FailureReason = outcome.status
            item.add_new(0x00000902, "LO", outcome.comment[:64])  # Error Comment: why, in words
            failed.append(item)
    if study or len(studies) == 1:
        ds.RetrieveURL = f"{root}/studies/{study or studies.pop()}"
    if stored:
        ds.ReferencedSOPSequence = stored
    if failed:
        ds.FailedSOPSequence = failed
    return ds


class HeldBody:
    """A STOW-RS body being read, its size reserved in the process's memory for peers (`peer_memory.py`) as it grows
    and given back when the request is done."""

    def __init__(self, peer_memory: PeerMemory) -> None:
        self._peer_memory = peer_memory
        self.reserved = 0

    def grow_to(self, size: int) -> None:
        """Reserve room for `size` bytes of body; 503 (with the reason) before taking it when the node has none."""
        if size <= self.reserved:
            return
        wanted = -(-size // STEP) * STEP - self.reserved
        if not self._peer_memory.take(wanted):
            refusal = self._peer_memory.refusal("this STOW-RS request", wanted)
            log.warning("STOW-RS refused: %s", refusal)
            raise HTTPException(503, f"{refusal}: send it again later", headers={"Retry-After": "10"})
        self.reserved += wanted

    def release(self) -> None:
        self._peer_memory.give_back(self.reserved)
        self.reserved = 0


async def read_capped(request: Request, limit_bytes: int, held: HeldBody) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit_bytes` (declared or streamed), or
    with 503 when the node's memory for peers has no room for it (`held` reserves it)."""
    declared = request.headers.get("content-length", "")
    too_large = HTTPException(
        413, f"request body larger than http.max_stow_mb ({limit_bytes // 2**20} MiB): send the study in several requests"
    )
    if declared.isdigit():
        if int(declared) > limit_bytes:
            raise too_large
        held.grow_to(int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise too_large
        held.grow_to(len(body))
    return bytes(body)


async def stow(request: Request, context: WebContext, study: str | None) -> JSONResponse:
    assert context.peer_memory is not None
    held = HeldBody(context.peer_memory)
    try:
        return await stored_answer(request, context, study, await read_capped(request, context.config.http.max_stow_mb * 2**20, held))
    finally:
        held.release()


async def stored_answer(request: Request, context: WebContext, study: str | None, body: bytes) -> JSONResponse:
    parts = parse_body(request.headers.get("content-type", ""), body)
    client = request.client
    outcomes = await run_in_threadpool(
        store_all, receiver(context, request), context, parts, study, client.host if client else "", client.port if client else 0
    )
    failures = sum(not outcome.ok for outcome in outcomes)
    status = 200 if not failures else 409 if failures == len(outcomes) else 202
    answer = response_body(base_url(request), parts, outcomes, study)
    return JSONResponse(answer.to_json_dict(), status_code=status, media_type="application/dicom+json")


@router.post("/studies", summary="STOW-RS: store instances (multipart/related; type=application/dicom)")
async def store_instances(request: Request, context: ContextDep) -> JSONResponse:
    return await stow(request, context, None)


@router.post("/studies/{study}", summary="STOW-RS: store instances of one study")
async def store_study_instances(study: str, request: Request, context: ContextDep) -> JSONResponse:
    return await stow(request, context, study)
