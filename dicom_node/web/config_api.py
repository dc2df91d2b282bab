"""`/api/config/{ae,source,destination}`: the run-time configuration, read and changed without a restart.

MONAI Deploy Informatics Gateway's `/config/ae`, `/config/source` and `/config/destination`, with
`GET /api/config/destination/cecho/{name}` (502 when the echo fails). A change is in the database when the
answer comes, in force in every process of the node within a second (`live_config.py`), and in the audit log
under the request's identity. Errors: 422 naming each field and its rule, 404 for an unknown name, 409 for a
duplicate, for removing the last called AE or source, and for removing a destination that still has pending
exports (the body says how many; `?force=true` removes it and fails them).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from dicom_node.config_entities import InvalidEntity, Kind, RoutedDestination, merged, parse, public
from dicom_node.net.address import DicomAddress
from dicom_node.net.scu import NoAssociation, Scu, tls_args
from dicom_node.store.config_store import ConfigConflict, ConfigStore, NotConfigured, PendingExports
from dicom_node.web.audit import ANONYMOUS
from dicom_node.web.context import WebContext, get_context

router = APIRouter(prefix="/api/config", tags=["configuration"])
ContextDep = Annotated[WebContext, Depends(get_context)]


def _store(context: WebContext) -> ConfigStore:
    assert context.config_store is not None  # set by WebContext
    return context.config_store


def _who(request: Request) -> str:
    return str(getattr(request.state, "identity", ANONYMOUS))


def _problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _entities(context: WebContext, kind: Kind) -> dict[str, dict[str, Any]]:
    return _store(context).load()[1].specs[kind]


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        return _problem(422, f"the body is not JSON: {exc}", errors=[{"field": "", "rule": "a JSON object"}])
    if not isinstance(body, dict):
        return _problem(422, "the body is not a JSON object", errors=[{"field": "", "rule": "a JSON object"}])
    return body


def _changed(action: Any) -> JSONResponse:
    """Run a store change; the rules' refusals as their status codes."""
    try:
        change = action()
    except InvalidEntity as exc:
        return _problem(422, str(exc), errors=exc.problems)
    except PendingExports as exc:
        return _problem(409, str(exc), pending_exports=exc.count)
    except ConfigConflict as exc:
        return _problem(409, str(exc))
    except NotConfigured as exc:
        return _problem(404, str(exc))
    body = public(change.kind, change.after if change.after is not None else change.before or {})
    return JSONResponse(body, status_code=201 if change.action == "add" else 200)


@router.get("/destination/cecho/{name}", summary="C-ECHO a configured destination (502 when it does not answer or refuses)")
def cecho(name: str, context: ContextDep) -> JSONResponse:
    spec = _entities(context, "destination").get(name)
    if spec is None:
        return _problem(404, f"no destination {name}")
    dest = RoutedDestination.model_validate(spec)
    address = DicomAddress(dest.ae_title, dest.host, dest.port)
    try:
        result = Scu(context.config.export, tls_args(dest)).echo(address)
    except (NoAssociation, OSError, ValueError) as exc:
        return _problem(502, f"C-ECHO to {name} ({address}) failed: {exc}", destination=name, ok=False)
    body = {"destination": name, "ok": result.status == 0, "status": f"0x{result.status:04X}", "seconds": round(result.seconds, 4)}
    return JSONResponse(body, status_code=200 if result.status == 0 else 502)


@router.get("/{kind}", summary="Every called AE, source or destination (secrets redacted)")
def list_entities(kind: Kind, context: ContextDep) -> list[dict[str, Any]]:
    return [public(kind, spec) for spec in _entities(context, kind).values()]


@router.get("/{kind}/{name}", summary="One called AE (by its title), source or destination (by its name)")
def get_entity(kind: Kind, name: str, context: ContextDep) -> JSONResponse:
    spec = _entities(context, kind).get(name)
    return _problem(404, f"no {kind} {name}") if spec is None else JSONResponse(public(kind, spec))


@router.post("/{kind}", summary="Add one (201; 409 when the name exists; 422 naming the field and rule)", status_code=201)
async def add_entity(kind: Kind, request: Request, context: ContextDep) -> JSONResponse:
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    return _changed(lambda: _store(context).add(kind, parse(kind, body, context.config), _who(request)))


@router.put("/{kind}/{name}", summary="Change some fields of one (those given; the name stays)")
async def update_entity(kind: Kind, name: str, request: Request, context: ContextDep) -> JSONResponse:
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    current = _entities(context, kind).get(name)
    if current is None:
        return _problem(404, f"no {kind} {name}")
    return _changed(lambda: _store(context).update(kind, name, parse(kind, merged(current, body), context.config), _who(request)))


@router.delete("/{kind}/{name}", summary="Remove one (409 for the last called AE or source, or a destination with pending exports)")
def remove_entity(kind: Kind, name: str, request: Request, context: ContextDep, force: bool = False) -> JSONResponse:
    return _changed(lambda: _store(context).remove(kind, name, _who(request), force))
