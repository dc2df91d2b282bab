"""WADO-RS (PS3.18 10.4): studies, series and instances as stored, their metadata, frames, bulk data, rendered images.

Instances are returned as the files the node stored, byte for byte (the sender's
transfer syntax, `transfer-syntax=*` in the response): the node never transcodes
what it received. Frames are returned as stored when the client accepts that
(`transfer-syntax=*` or the stored syntax), else decoded to Explicit VR Little Endian.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated

import pydicom
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicom_node.net.multipart import media_type_parameters, multipart_content_type, new_boundary, write_parts
from dicom_node.web.context import WebContext, get_context
from dicom_node.web.dicomweb.catalogue import Entry, Scope, entries
from dicom_node.web.dicomweb.frames import FrameError, Frames, decoded_frames, frame_count, parse_frame_list, rendered, stored_frames
from dicom_node.web.resources import SessionDep

router = APIRouter()
ContextDep = Annotated[WebContext, Depends(get_context)]
AcceptHeader = Annotated[str, Header(alias="accept")]
DICOM_JSON = "application/dicom+json"
PIXEL_DATA = 0x7FE00010
CHUNK = 1 << 20


def base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/dicomweb"


def found(session: SessionDep, context: WebContext, scope: Scope) -> list[Entry]:
    """The instances in scope, or 404 naming what was asked for."""
    items = entries(session, context.data_dir, scope)
    if not items:
        asked = ", ".join(f"{name} {uids[0]}" for name, uids in (("study", scope.study), ("series", scope.series), ("instance", scope.sop)) if uids)
        raise HTTPException(404, f"no {asked} on this node")
    return items


def accepted(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The Accept header's media ranges, each with its parameters (the `type` of multipart/related among them)."""
    return [media_type_parameters(item) for item in accept.split(",") if item.strip()] or [("*/*", {})]


def wants(accept: str, *part_types: str) -> bool:
    """True when the client accepts parts of one of `part_types` (or anything)."""
    for media, params in accepted(accept):
        if media in ("*/*", "multipart/*") or (media == "multipart/related" and params.get("type", "").lower() in ("", *part_types)):
            return True
        if media in part_types:
            return True
    return False


def _stored_files(items: list[Entry]) -> Iterator[tuple[str, bytes]]:
    for entry in items:
        yield "application/dicom", entry.path.read_bytes()


def within_response_limit(size: int, context: WebContext, what: str) -> None:
    """413 before anything is sent when an answer of `size` bytes would pass `http.max_response_mb`: the node
    holds a frames answer in memory, and a small request must not make it send gigabytes."""
    limit = context.config.http.max_response_mb
    if size > limit * 2**20:
        raise HTTPException(413, f"{what} add up to {size / 2**20:.0f} MiB, more than http.max_response_mb ({limit} MiB): ask for less at a time")


def instances_response(context: WebContext, items: list[Entry], accept: str) -> StreamingResponse:
    if not wants(accept, "application/dicom"):
        raise HTTPException(406, "instances are served as multipart/related; type=\"application/dicom\" (as stored)")
    within_response_limit(sum(entry.path.stat().st_size for entry in items), context, f"the {len(items)} instances asked for")
    boundary = new_boundary()
    return StreamingResponse(write_parts(boundary, _stored_files(items)), media_type=multipart_content_type(boundary, "application/dicom"))


def metadata_response(request: Request, items: list[Entry]) -> JSONResponse:
    root = base_url(request)
    documents = []
    for entry in items:
        header = entry.header()
        document = header.to_json_dict(bulk_data_threshold=1 << 30)
        if "Rows" in header:  # an image: its pixel data is bulk data
            uri = f"{root}/studies/{entry.study_uid}/series/{entry.series_uid}/instances/{entry.sop_uid}/bulk/7FE00010"
            encapsulated = UID(header.file_meta.TransferSyntaxUID).is_encapsulated
            document["7FE00010"] = {"vr": "OB" if encapsulated or header.get("BitsAllocated", 16) <= 8 else "OW", "BulkDataURI": uri}
        documents.append(document)
    return JSONResponse(documents, media_type=DICOM_JSON)


@router.get("/studies/{study}", summary="WADO-RS: a study's instances as stored (multipart/related application/dicom)")
def retrieve_study(study: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*") -> StreamingResponse:
    return instances_response(context, found(session, context, Scope([study])), accept)


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: a series' instances as stored")
def retrieve_series(study: str, series: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*") -> StreamingResponse:
    return instances_response(context, found(session, context, Scope([study], [series])), accept)


@router.get("/studies/{study}/series/{series}/instances/{sop}", summary="WADO-RS: one instance as stored")
def retrieve_instance(study: str, series: str, sop: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*") -> StreamingResponse:
    return instances_response(context, found(session, context, Scope([study], [series], [sop])), accept)


@router.get("/studies/{study}/metadata", summary="WADO-RS: metadata of a study's instances (DICOM JSON)")
def study_metadata(study: str, request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return metadata_response(request, found(session, context, Scope([study])))


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: metadata of a series' instances (DICOM JSON)")
def series_metadata(study: str, series: str, request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return metadata_response(request, found(session, context, Scope([study], [series])))


@router.get("/studies/{study}/series/{series}/instances/{sop}/metadata", summary="WADO-RS: metadata of one instance (DICOM JSON)")
def instance_metadata(study: str, series: str, sop: str, request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return metadata_response(request, found(session, context, Scope([study], [series], [sop])))


def full_dataset(session: SessionDep, context: WebContext, study: str, series: str, sop: str) -> Dataset:
    (entry,) = found(session, context, Scope([study], [series], [sop]))
    dataset = pydicom.dcmread(entry.path)
    if "PixelData" not in dataset:
        raise HTTPException(404, f"instance {sop} has no pixel data")
    return dataset


def frames_for(dataset: Dataset, numbers: list[int], accept: str) -> Frames:
    """The frames in the syntax the client accepts: as stored when it may, else decoded (406 when neither)."""
    stored = str(dataset.file_meta.TransferSyntaxUID)
    syntaxes = {params.get("transfer-syntax", ExplicitVRLittleEndian) for media, params in accepted(accept)}
    try:
        if "*" in syntaxes or stored in syntaxes or any(media == "*/*" for media, _ in accepted(accept)):
            return stored_frames(dataset, numbers)
        if ExplicitVRLittleEndian in syntaxes:
            return decoded_frames(dataset, numbers)
    except FrameError as exc:
        raise HTTPException(406, str(exc)) from exc
    raise HTTPException(406, f"frames are available as stored ({stored}) or as {ExplicitVRLittleEndian}, not {sorted(syntaxes)}")


def octet_stream_response(parts: Iterable[tuple[str, bytes]]) -> StreamingResponse:
    boundary = new_boundary()
    return StreamingResponse(write_parts(boundary, parts), media_type=multipart_content_type(boundary, "application/octet-stream"))


def frames_response(frames: Frames, context: WebContext) -> StreamingResponse:
    within_response_limit(sum(map(len, frames.frames)), context, f"the {len(frames.frames)} frames asked for")
    part_type = f"application/octet-stream; transfer-syntax={frames.transfer_syntax}"
    return octet_stream_response((part_type, frame) for frame in frames.frames)


def requested_frames(dataset: Dataset, frame_list: str, context: WebContext) -> list[int]:
    try:
        return parse_frame_list(frame_list, frame_count(dataset), context.config.http.max_frames_per_request)
    except FrameError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}", summary="WADO-RS: frames of an instance's pixel data")
def retrieve_frames(
    study: str, series: str, sop: str, frame_list: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*"
) -> StreamingResponse:
    dataset = full_dataset(session, context, study, series, sop)
    return frames_response(frames_for(dataset, requested_frames(dataset, frame_list, context), accept), context)


@router.get("/studies/{study}/series/{series}/instances/{sop}/bulk/{tag}", summary="WADO-RS: bulk data of an instance (pixel data: all frames)")
def retrieve_bulk(
    study: str, series: str, sop: str, tag: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*"
) -> StreamingResponse:
    dataset = full_dataset(session, context, study, series, sop)
    try:
        number = int(tag, 16)
    except ValueError:
        raise HTTPException(400, f"bulk data tag {tag!r} is not 8 hex digits") from None
    if number == PIXEL_DATA:
        return frames_response(frames_for(dataset, list(range(1, frame_count(dataset) + 1)), accept), context)
    if number not in dataset or not isinstance(dataset[number].value, bytes):
        raise HTTPException(404, f"instance {sop} has no bulk data element {tag}")
    return octet_stream_response([("application/octet-stream", dataset[number].value)])


def rendered_response(dataset: Dataset, number: int, accept: str) -> Response:
    media = "image/jpeg" if "image/jpeg" in accept and "image/png" not in accept else "image/png"
    try:
        return Response(rendered(dataset, number, media), media_type=media)
    except FrameError as exc:
        raise HTTPException(406, str(exc)) from exc


@router.get("/studies/{study}/series/{series}/instances/{sop}/rendered", summary="WADO-RS: an instance's first frame rendered (PNG or JPEG)")
def render_instance(study: str, series: str, sop: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*") -> Response:
    return rendered_response(full_dataset(session, context, study, series, sop), 1, accept)


@router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered", summary="WADO-RS: one frame rendered (PNG or JPEG)")
def render_frame(
    study: str, series: str, sop: str, frame: str, session: SessionDep, context: ContextDep, accept: AcceptHeader = "*/*"
) -> Response:
    dataset = full_dataset(session, context, study, series, sop)
    numbers = requested_frames(dataset, frame, context)
    if len(numbers) != 1:
        raise HTTPException(400, f"one frame number expected, not {frame!r}")
    return rendered_response(dataset, numbers[0], accept)
