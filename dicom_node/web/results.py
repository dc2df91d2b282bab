"""A job's results over HTTP: the JSON and CSV files the worker wrote, and the viewer's slice images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import FileResponse

from dicom_node.pipeline.errors import SeriesRejected
from dicom_node.pipeline.settings import ProcessingSettings
from dicom_node.pipeline.volume import load_series
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import Job
from dicom_node.web.context import WebContext, get_context
from dicom_node.web.resources import RowId, SessionDep, get_or_404
from dicom_node.pipelines.registry import read_manifest
from dicom_node.web.viewer import WINDOW_LEVEL, WINDOW_WIDTH, LruCache, Plane, ViewerError, ViewVolume, load_masks, render, view_of

router = APIRouter(prefix="/api/jobs/{job_id}")
ContextDep = Annotated[WebContext, Depends(get_context)]
VOLUME_CACHE: LruCache[ViewVolume] = LruCache(capacity=3)
DOWNLOADS = {"json": "application/json", "csv": "text/csv"}


def result_file(context: WebContext, job: Job, kind: str) -> Path | None:
    """The job's result file of `kind` ('json', 'csv', 'masks'), if its manifest names one; never a path outside the data dir."""
    manifest = read_manifest(job.pipeline, job.result)
    files = manifest.files if manifest else None
    relative = {"json": files.json_file, "csv": files.csv, "masks": files.masks}[kind] if files else None
    if not relative:
        return None
    root = context.data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def processing_settings(context: WebContext, job: Job) -> ProcessingSettings:
    """The selection and load rules the worker used for this job's pipeline (the masks are on the grid they give).

    A pipeline no longer configured falls back to the defaults; masks on another grid are then refused by shape.
    """
    pipeline = context.config.pipelines.get(job.pipeline)
    return pipeline.processing if pipeline is not None else ProcessingSettings()


def view_volume(context: WebContext, job: Job) -> ViewVolume:
    """The job's CT (and masks, if any) from the cache, loading them on first use.

    The CT is stacked with the job's pipeline's configured selection and load rules, as the worker stacked it
    (with the defaults, a series the worker accepted under looser rules, e.g. a filled gap, would be refused or
    put on another grid). The key includes the finish time: a retried job rewrites its results under the same id.
    """

    def load() -> ViewVolume:
        paths = [context.data_dir / p for p in JobQueue(context.sessions, context.config.node.name).instance_paths(job.series_fk)]
        if not paths:
            raise ViewerError("the series has no stored instances")
        settings = processing_settings(context, job)
        try:
            view = view_of(load_series(paths, settings.selection, settings.load))
        except SeriesRejected as exc:
            raise ViewerError(f"the series cannot be shown: {exc}") from exc
        except MemoryError as exc:  # numpy refuses the allocation up front (e.g. Rows = Columns = 65535): nothing was used
            raise ViewerError(f"the series is too large to show: {exc}") from exc
        masks_path = result_file(context, job, "masks")
        manifest = read_manifest(job.pipeline, job.result)
        if masks_path is None or manifest is None or not manifest.overlays:
            return view
        overlays = tuple(manifest.overlays)
        return replace(view, masks=load_masks(masks_path, view.hu.shape, [o.array for o in overlays]), overlays=overlays)

    try:
        return VOLUME_CACHE.get((str(context.data_dir), job.id, job.finished_at), load)
    except ViewerError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.get("/result.{kind}", summary="The job's result table as JSON or CSV", response_class=FileResponse)
def download_result(job_id: RowId, kind: str, session: SessionDep, context: ContextDep) -> FileResponse:
    if kind not in DOWNLOADS:
        raise HTTPException(404, f"no result format {kind!r}: json or csv")
    job = get_or_404(session, Job, job_id)
    path = result_file(context, job, kind)
    if path is None:
        raise HTTPException(404, f"job {job_id} has no {kind} result ({job.state})")
    return FileResponse(path, media_type=DOWNLOADS[kind], filename=f"job-{job_id}-result.{kind}")


@router.get("/volume", summary="Size, spacing and overlays of the job's CT, for the viewer")
def volume_info(job_id: RowId, session: SessionDep, context: ContextDep) -> dict[str, Any]:
    job = get_or_404(session, Job, job_id)
    volume = view_volume(context, job)
    return {
        "shape": list(volume.hu.shape),
        "spacing": list(volume.spacing),
        "slices": {"axial": volume.slice_count("axial"), "coronal": volume.slice_count("coronal")},
        "edges": {"axial": volume.edges("axial"), "coronal": volume.edges("coronal")},
        "positions_mm": {"axial": volume.axial_positions()},
        "masks": volume.masks is not None,
        "window": {"width": WINDOW_WIDTH, "level": WINDOW_LEVEL},
        "overlays": {o.name: {"rgb": list(o.rgb), "alpha": o.alpha} for o in volume.overlays},
    }


@router.get("/slices/{plane}/{index}.png", summary="One axial or coronal slice in the lung window, optionally with the masks", response_class=Response)
def slice_png(
    job_id: RowId,
    plane: Plane,
    index: int,
    session: SessionDep,
    context: ContextDep,
    overlay: Annotated[bool, Query(description="Blend the right/left lung and opacity masks in.")] = False,
) -> Response:
    job = get_or_404(session, Job, job_id)
    volume = view_volume(context, job)
    try:
        png = render(volume, plane, index, overlay)
    except IndexError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ViewerError as exc:
        raise HTTPException(409, str(exc)) from exc
    return Response(png, media_type="image/png")  # not cacheable: a retried job redraws the same URL
