"""QIDO-RS (PS3.18 10.6): search studies, series and instances, with the standard keys, includefield, limit/offset
and fuzzy matching of person names; the node's results (SEG, SR, key images) are found like received instances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from dicom_node.web.context import WebContext, get_context
from dicom_node.web.dicomweb.catalogue import Scope, entries
from dicom_node.web.dicomweb.query import Level, QueryError, answer, parse_query
from dicom_node.web.resources import SessionDep

router = APIRouter()
ContextDep = Annotated[WebContext, Depends(get_context)]
UID_KEYS = {"StudyInstanceUID": "study", "0020000D": "study", "SeriesInstanceUID": "series", "0020000E": "series", "SOPInstanceUID": "sop", "00080018": "sop"}


def search(request: Request, session: SessionDep, context: WebContext, level: Level, study: str | None = None, series: str | None = None) -> JSONResponse:
    params = list(request.query_params.multi_items())
    try:
        query = parse_query(params)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc
    # UIDs in the path or in the query narrow what is read from the index; matching then checks them again.
    narrowed: dict[str, list[str] | None] = {"study": [study] if study else None, "series": [series] if series else None, "sop": None}
    for name, value in params:
        key = UID_KEYS.get(name) or UID_KEYS.get(name.upper())
        if key and value and narrowed[key] is None:
            narrowed[key] = [uid.strip() for uid in value.replace("\\", ",").split(",")]
    found = answer(level, entries(session, context.data_dir, Scope(**narrowed)), query)
    return JSONResponse([ds.to_json_dict(bulk_data_threshold=1 << 30) for ds in found], media_type="application/dicom+json")


@router.get("/studies", summary="QIDO-RS: search for studies")
def search_studies(request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return search(request, session, context, "study")


@router.get("/series", summary="QIDO-RS: search for series in all studies")
def search_all_series(request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return search(request, session, context, "series")


@router.get("/studies/{study}/series", summary="QIDO-RS: search for a study's series")
def search_series(study: str, request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return search(request, session, context, "series", study)


@router.get("/instances", summary="QIDO-RS: search for instances in all studies")
def search_all_instances(request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return search(request, session, context, "instance")


@router.get("/studies/{study}/instances", summary="QIDO-RS: search for a study's instances")
def search_study_instances(study: str, request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return search(request, session, context, "instance", study)


@router.get("/studies/{study}/series/{series}/instances", summary="QIDO-RS: search for a series' instances")
def search_instances(study: str, series: str, request: Request, session: SessionDep, context: ContextDep) -> JSONResponse:
    return search(request, session, context, "instance", study, series)
