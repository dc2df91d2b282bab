"""`/api/inference`: ask the node to process a study that is in a PACS, follow it, cancel it (`inference_request.py`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.inference_request import Problem, parse_request, problem_document, request_status
from dicom_node.store.inference_requests import InferenceRequests
from dicom_node.store.models import InferenceRequest
from dicom_node.web.context import WebContext, get_context, get_session
from dicom_node.web.resources import Limit

router = APIRouter(prefix="/api/inference", tags=["inference requests"])
SessionDep = Annotated[Session, Depends(get_session)]
ContextDep = Annotated[WebContext, Depends(get_context)]


def _status(context: WebContext, transaction_id: str) -> dict[str, Any]:
    with context.sessions() as session:
        row = session.scalar(select(InferenceRequest).where(InferenceRequest.transaction_id == transaction_id))
        if row is None:
            raise HTTPException(404, f"no inference request {transaction_id!r}")
        return request_status(session, row, InferenceRequests(context.sessions), context.config.export.calling_ae_title)


@router.post("", summary="Process studies that are in a PACS: find, retrieve, run the pipeline, export (MIG's field names)", status_code=201)
async def create(request: Request, context: ContextDep) -> JSONResponse:
    try:
        raw = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        parsed: Any = [Problem("", f"the body is not JSON: {exc}")]
    else:
        parsed = parse_request(raw, context.config)
    if isinstance(parsed, list):
        return JSONResponse(problem_document(parsed), status_code=422, media_type="application/problem+json")
    _, created = InferenceRequests(context.sessions).create(parsed)
    body = _status(context, parsed.transaction_id)
    headers = {"Location": f"/api/inference/{parsed.transaction_id}"}
    return JSONResponse(body, status_code=201 if created else 409, headers=headers)


@router.get("", summary="Inference requests, newest first, with their state")
def list_requests(session: SessionDep, limit: Limit = 100) -> list[dict[str, Any]]:
    rows = session.scalars(select(InferenceRequest).order_by(InferenceRequest.id.desc()).limit(limit))
    return [
        {"id": r.id, "transactionID": r.transaction_id, "state": r.state, "source": r.source, "inputs": {k: v for k, v in r.inputs.items() if v},
         "partial": r.partial, "errors": len(r.errors), "createdAt": r.created_at.isoformat() + "Z",
         "finishedAt": r.finished_at.isoformat() + "Z" if r.finished_at else None}
        for r in rows
    ]


@router.get("/{transaction_id}", summary="Where a request stands: state, instances, jobs, exports, errors with their DICOM status")
def get_request(transaction_id: str, context: ContextDep) -> dict[str, Any]:
    return _status(context, transaction_id)


@router.delete("/{transaction_id}", summary="Cancel an unfinished request (409 when it has already ended)")
def cancel_request(transaction_id: str, context: ContextDep) -> JSONResponse:
    requests = InferenceRequests(context.sessions)
    request_id = requests.find(transaction_id)
    if request_id is None:
        raise HTTPException(404, f"no inference request {transaction_id!r}")
    cancelled = requests.cancel(request_id)
    return JSONResponse(_status(context, transaction_id), status_code=200 if cancelled else 409)
