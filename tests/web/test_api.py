"""Every endpoint of the REST API over a database holding the real P001 series and its finished job."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from dicom_node.pipelines.covid19.manifest import OVERLAYS
from tests.web.conftest import (
    SMALL_SERIES_SLICES,
    Site,
    build_site,
    p001_files,
    tinted_pixels,
)


@pytest.fixture(scope="module")
def client(site: Site):  # type: ignore[no-untyped-def]
    with site.client() as client:
        yield client


def test_openapi_schema_lists_the_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/series", "/api/jobs/{job_id}", "/api/jobs/{job_id}/retry", "/api/exports/{export_id}/retry",
                 "/api/jobs/{job_id}/slices/{plane}/{index}.png", "/health", "/ready", "/metrics"):
        assert path in paths


def test_health(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/health").json() == {"status": "ok", "node": "test-node"}


def test_associations(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    rows = client.get("/api/associations").json()
    assert [row["id"] for row in rows] == [site.association_id]
    one = client.get(f"/api/associations/{site.association_id}").json()
    assert one["calling_ae"] == "MODALITY" and one["state"] == "released" and one["instances_received"] == 148
    assert client.get("/api/associations", params={"state": "open"}).json() == []


def test_studies_and_series(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    (study,) = client.get("/api/studies").json()
    detail = client.get(f"/api/studies/{site.study_id}").json()
    assert detail["study_instance_uid"] == study["study_instance_uid"]
    assert [s["id"] for s in detail["series"]] == [site.series_id]

    (series,) = client.get("/api/series").json()
    assert series["instance_count"] == 148 and series["modality"] == "CT"
    assert series["job"]["id"] == site.job_id and series["job"]["state"] == "done"
    assert series["job"]["exports"] == {"failed": 1}

    detail = client.get(f"/api/series/{site.series_id}").json()
    (job,) = detail["jobs"]
    assert job["id"] == site.job_id and job["result"]["classification"]["baseline"] is True


def test_jobs(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    (job,) = client.get("/api/jobs").json()
    assert job["state"] == "done" and job["steps"] == {"load": 2.5, "lungs": 4.0, "classify": 0.3}
    assert client.get("/api/jobs", params={"state": "failed"}).json() == []
    one = client.get(f"/api/jobs/{site.job_id}").json()
    assert one["result"]["measurements"] == site.result["measurements"]
    assert one["instances"] == 148


def test_exports(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    (export,) = client.get("/api/exports", params={"job": site.job_id}).json()
    assert export["state"] == "failed" and export["last_error"] == "association rejected"
    assert client.get("/api/exports", params={"destination": "elsewhere"}).json() == []
    assert client.get(f"/api/exports/{site.export_id}").json()["id"] == site.export_id


def test_result_downloads(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    response = client.get(f"/api/jobs/{site.job_id}/result.json")
    assert response.headers["content-type"].startswith("application/json")
    assert json.loads(response.content)["classification"]["scores"] == [0.73, 0.27]
    response = client.get(f"/api/jobs/{site.job_id}/result.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["measurement", "right", "left", "total"] and rows[1][0] == "lung_volume_ml"
    assert client.get(f"/api/jobs/{site.job_id}/result.xml").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/associations/999", "/api/studies/999", "/api/series/999", "/api/jobs/999", "/api/exports/999",
        "/api/jobs/999/result.json", "/api/jobs/999/volume", "/api/jobs/999/slices/axial/0.png",
    ],
)
def test_unknown_ids_are_404(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 404
    assert "999" in response.json()["detail"]


def integer_parameters(schema: dict) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) of every integer path or query parameter the API declares."""
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                types = [parameter["schema"].get("type")] + [option.get("type") for option in parameter["schema"].get("anyOf", [])]
                if "integer" in types:
                    found.append((method, path, parameter["in"], parameter["name"]))
    return found


@pytest.mark.parametrize("bad", [2**63, 2**64 + 7, -1])
def test_ids_the_database_cannot_hold_answer_422(client, site: Site, bad: int) -> None:  # type: ignore[no-untyped-def]
    """2^63 and more overflowed SQLite's integer (500 OverflowError); every integer parameter of every endpoint is tried."""
    schema = client.get("/openapi.json").json()
    parameters = integer_parameters(schema)
    assert len(parameters) >= 16
    for method, path, where, name in parameters:
        values = {"job_id": site.job_id, "plane": "axial", "kind": "json", "index": 0}
        query = {}
        if where == "path":
            values[name] = bad
        else:
            query[name] = bad
        response = client.request(method.upper(), path.format(**values), params=query)
        assert response.status_code in (404, 422), (method, path, name, response.status_code)
        assert response.json()["detail"], (method, path, name)


def test_unknown_ids_are_404_for_actions(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/api/jobs/999/retry").status_code == 404
    assert client.post("/api/exports/999/retry").status_code == 404


def test_volume_info(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    info = client.get(f"/api/jobs/{site.job_id}/volume").json()
    assert info["shape"] == [148, 512, 512] and info["slices"] == {"axial": 148, "coronal": 512}
    assert info["masks"] is True and info["window"] == {"width": 1500, "level": -600}
    assert info["spacing"][1] == pytest.approx(0.748046875)
    assert info["edges"]["axial"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    positions = info["positions_mm"]["axial"]  # P001's ImagePositionPatient z: -346.1 (feet end) to -52.1 (head end)
    assert len(positions) == 148 and positions[0] == pytest.approx(-346.1) and positions[-1] == pytest.approx(-52.1)


def test_axial_slice_with_and_without_overlay(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    plain = client.get(f"/api/jobs/{site.job_id}/slices/axial/74.png")
    assert plain.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(plain.content))
    assert image.size == (512, 512)
    assert tinted_pixels(plain.content) == {overlay.name: 0 for overlay in OVERLAYS}
    tinted = tinted_pixels(client.get(f"/api/jobs/{site.job_id}/slices/axial/74.png", params={"overlay": 1}).content)
    assert all(count > 500 for count in tinted.values()), tinted


def test_right_lung_is_drawn_on_the_image_left(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    png = client.get(f"/api/jobs/{site.job_id}/slices/axial/74.png", params={"overlay": 1}).content
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    green = (rgb[..., 1] - rgb[..., 0] > 25) & (rgb[..., 1] - rgb[..., 2] > 25)
    columns = np.nonzero(green)[1]
    assert columns.max() < 256  # the fixture labelled image-left air 1 (right lung)


def test_coronal_slice_has_square_pixels_and_head_up(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    info = client.get(f"/api/jobs/{site.job_id}/volume").json()
    png = client.get(f"/api/jobs/{site.job_id}/slices/coronal/256.png", params={"overlay": 1}).content
    image = Image.open(io.BytesIO(png))
    spacing_z, _, spacing_x = info["spacing"]
    assert image.width == 512
    assert image.height == round(148 * spacing_z / spacing_x)
    assert tinted_pixels(png)["right_lung"] > 500


def test_slice_index_out_of_range_and_bad_plane(client, site: Site) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"/api/jobs/{site.job_id}/slices/axial/148.png").status_code == 404
    assert client.get(f"/api/jobs/{site.job_id}/slices/coronal/-1.png").status_code == 404
    assert client.get(f"/api/jobs/{site.job_id}/slices/sagittal/1.png").status_code == 422


def test_retry_job(small_site: Site) -> None:
    with small_site.client() as client:
        assert client.get(f"/api/jobs/{small_site.job_id}").json()["state"] == "failed"
        job = client.post(f"/api/jobs/{small_site.job_id}/retry").json()
        assert job["state"] == "queued" and job["reason"] == "retried by an operator" and job["attempts"] == 0
        conflict = client.post(f"/api/jobs/{small_site.job_id}/retry")
        assert conflict.status_code == 409 and "queued" in conflict.json()["detail"]


def test_retry_export(small_site: Site) -> None:
    with small_site.client() as client:
        export = client.post(f"/api/exports/{small_site.export_id}/retry").json()
        assert export["state"] == "pending" and export["attempts"] == 0 and export["last_error"] == "retried by an operator"
        conflict = client.post(f"/api/exports/{small_site.export_id}/retry")
        assert conflict.status_code == 409 and "pending" in conflict.json()["detail"]
        with small_site.sessions.begin() as session:
            session.execute(text("UPDATE export SET state = 'sent'"))
        assert client.post(f"/api/exports/{small_site.export_id}/retry").json()["state"] == "pending"
        with small_site.sessions.begin() as session:
            session.execute(text("UPDATE export SET state = 'cancelled'"))
        conflict = client.post(f"/api/exports/{small_site.export_id}/retry")
        assert conflict.status_code == 409 and "cancelled" in conflict.json()["detail"]


def test_job_without_results(small_site: Site) -> None:
    with small_site.client() as client:
        assert client.get(f"/api/jobs/{small_site.job_id}/result.csv").status_code == 404
        info = client.get(f"/api/jobs/{small_site.job_id}/volume").json()
        assert info["masks"] is False and info["slices"]["axial"] == SMALL_SERIES_SLICES
        assert client.get(f"/api/jobs/{small_site.job_id}/slices/axial/1.png").status_code == 200
        response = client.get(f"/api/jobs/{small_site.job_id}/slices/axial/1.png", params={"overlay": 1})
        assert response.status_code == 409 and "no masks" in response.json()["detail"]


def test_result_paths_outside_the_data_dir_are_not_served(small_site: Site) -> None:
    outside = small_site.data_dir.parent / "secret.json"
    outside.write_text('{"secret": true}')
    with small_site.sessions.begin() as session:
        session.execute(text("UPDATE job SET result = :result"), {"result": '{"files": {"json": "../secret.json"}}'})
    with small_site.client() as client:
        response = client.get(f"/api/jobs/{small_site.job_id}/result.json")
    assert response.status_code == 404 and "secret" not in response.text


def test_volume_is_stacked_with_the_pipelines_configured_rules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A series with one slice missing: the defaults refuse it, a pipeline configured to fill one gap shows it on its grid."""
    files = p001_files()[-SMALL_SERIES_SLICES:]
    gap_site = build_site(tmp_path, files[:12] + files[13:], done=False)
    with gap_site.client() as client:
        refused = client.get(f"/api/jobs/{gap_site.job_id}/volume")
    assert refused.status_code == 409 and "missing" in refused.json()["detail"]
    fill_one = {"covid19_ct": {"processing": {"load": {"max_missing_slices": 1}}}}
    with gap_site.client(pipelines=fill_one) as client:
        info = client.get(f"/api/jobs/{gap_site.job_id}/volume").json()
        assert info["shape"][0] == SMALL_SERIES_SLICES  # the filled slice included, as on the worker's grid
        assert client.get(f"/api/jobs/{gap_site.job_id}/slices/axial/12.png").status_code == 200
