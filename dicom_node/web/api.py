"""The HTTP application: REST API, health and readiness, Prometheus metrics, and the viewer's pages.

Built by `create_app(context)` over the node's own database sessions and settings;
the OpenAPI schema is at /openapi.json and the interactive docs at /docs and /redoc;
DICOMweb under /dicomweb, the OHIF viewer under /ohif/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST

from dicom_node import metrics
from dicom_node.store.gauges import DatabaseCollector
from dicom_node.web import config_api, dicomweb, inference, ohif, resources, results, session
from dicom_node.web.access import OPEN_PATHS, access_middleware
from dicom_node.web.audit import AccessLog
from dicom_node.web.context import WebContext, get_context
from dicom_node.web.security_headers import headers_middleware
from dicom_node.web.readiness import readiness
from dicom_node.web.security import allowed_hosts, cross_origin_check, host_middleware

STATIC_DIR = Path(__file__).resolve().parent / "static"


def install_middleware(app: FastAPI, context: WebContext) -> None:
    """Every request passes, outermost first: the access log (it records refusals too), the security headers
    (on refusals too), the Host check, the cross-origin check, then the token or loopback rule."""
    settings = context.config.http
    app.middleware("http")(access_middleware(settings.bearer_tokens))
    app.middleware("http")(cross_origin_check)
    app.middleware("http")(host_middleware(allowed_hosts(settings), OPEN_PATHS))
    app.middleware("http")(headers_middleware(https=settings.tls))
    if settings.access_log:
        app.middleware("http")(AccessLog(context.data_dir / settings.access_log).middleware())  # added last: runs first


def create_app(context: WebContext) -> FastAPI:
    # Swagger UI and ReDoc from the fastapi-offline package's files (under /static/docs), not from a CDN.
    app = FastAPIOffline(
        static_url="/static/docs",
        title="dicom-node",
        summary="DICOM AI node: received series, pipeline jobs, results and their export to the PACS.",
        version="0.1.0",
    )
    app.state.context = context
    app.state.database_metrics = metrics.database_registry(
        DatabaseCollector(context.sessions), context.data_dir, context.config.dicom.min_free_disk_mb
    )
    install_middleware(app, context)
    app.include_router(resources.router)
    app.include_router(session.router)
    app.include_router(results.router)
    app.include_router(inference.router)
    app.include_router(config_api.router)
    app.include_router(dicomweb.router)
    app.include_router(ohif.router)

    @app.get("/health", summary="The process is alive (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok", "node": context.config.node.name}

    @app.get("/ready", summary="Database, disk, inference server and destinations usable (503 when not)")
    def ready(request: Request) -> JSONResponse:
        checks = readiness(get_context(request))
        body: dict[str, Any] = {
            "ready": all(ok for ok, _ in checks.values()),
            "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(request.app.state.database_metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def series_list_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/config", include_in_schema=False)
    def config_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "config.html")

    @app.get("/series/{series_id}", include_in_schema=False)
    def series_page(series_id: int) -> FileResponse:
        return FileResponse(STATIC_DIR / "series.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
