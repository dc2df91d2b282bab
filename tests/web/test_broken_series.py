"""The viewer over series with one broken attribute (the phantom generator's series, edited): 4xx with the reason, never 500."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from phantoms.chest import make_phantom, write_phantom_series
from tests.web.conftest import build_site

Edit = Callable[[pydicom.Dataset, int], None]


def zero_spacing(ds: pydicom.Dataset, k: int) -> None:
    ds.PixelSpacing = [0, 0]


def nan_position(ds: pydicom.Dataset, k: int) -> None:
    if k == 5:
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], "NaN"]


def huge_matrix(ds: pydicom.Dataset, k: int) -> None:
    ds.Rows = ds.Columns = 65535  # 30 x 65535 x 65535 int16: 240 GiB


def rows_disagree_with_pixel_data(ds: pydicom.Dataset, k: int) -> None:
    ds.Rows = 32  # Pixel Data still holds 64 x 64 pixels


@pytest.mark.parametrize(
    ("edit", "named"),
    [(zero_spacing, "PixelSpacing"), (nan_position, "nan"), (huge_matrix, "65535"), (rows_disagree_with_pixel_data, "Rows")],
)
def test_viewer_refuses_a_broken_series_with_the_reason(tmp_path: Path, edit: Edit, named: str) -> None:
    files = write_phantom_series(make_phantom((64, 64, 30), seed=3), tmp_path / "series")
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        edit(ds, k)
        ds.save_as(path)
    (tmp_path / "data").mkdir()
    site = build_site(tmp_path / "data", files, done=False)
    with site.client() as http:
        for url in ("volume", "slices/axial/0.png", "slices/coronal/3.png", "slices/axial/1.png?overlay=1"):
            response = http.get(f"/api/jobs/{site.job_id}/{url}")
            assert response.status_code == 409, (url, response.status_code)
            assert named.lower() in response.json()["detail"].lower(), (url, response.json())
