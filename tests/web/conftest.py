"""A data dir holding the real P001 CT as the node stores it, one finished job with result files, and apps over it.

The result files stand in for the worker's (same layout and `Job.result` shape):
the masks are a plain threshold segmentation made here, which is enough to check
that the viewer puts them on the right voxels.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import Browser, sync_playwright
from scipy import ndimage
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Config, load_config
from dicom_node.pipeline.volume import load_series
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from dicom_node.store.files import instance_relpath
from dicom_node.store.ingest import Indexer, InstanceMeta
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import Export, Series, utcnow
from dicom_node.web.api import create_app
from dicom_node.web.context import WebContext

P001 = Path("/work/shared/data/covid-ct-md/P001")
LOOPBACK_CLIENT = ("127.0.0.1", 50000)
CHROMIUM = "/usr/bin/chromium"
# Names a page can use for another site (or a rebinding attacker's) that the browser resolves to loopback.
FOREIGN_HOSTS = ("attacker.test", "rebind.test")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-features=HttpsUpgrades",
    "--host-resolver-rules=" + ", ".join(f"MAP {name} 127.0.0.1" for name in FOREIGN_HOSTS),
]
SMALL_SERIES_SLICES = 25


@functools.cache
def p001_files() -> list[Path]:
    """P001's files from its feet to its head (contiguous slices whatever their names)."""
    files = list(P001.glob("*.dcm"))
    return sorted(files, key=lambda path: float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2]))


def tinted_pixels(png: bytes) -> dict[str, int]:
    """How many pixels of an image are tinted towards each overlay colour (grey pixels have equal channels)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return {
        "right_lung": int(((g - r > 25) & (g - b > 25)).sum()),
        "left_lung": int(((b - r > 25) & (b - g > 10)).sum()),
        "opacity": int(((r - g > 40) & (r - b > 40)).sum()),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(data_dir: Path, **sections: dict) -> Config:
    return load_config(None, {"node": {"data_dir": str(data_dir), "name": "test-node"}, **sections}, environ={})


@dataclass
class Site:
    """A data dir and database with P001 received and its job done."""

    data_dir: Path
    url: str
    sessions: sessionmaker[Session]
    series_id: int
    study_id: int
    job_id: int
    association_id: int
    export_id: int
    result: dict

    def context(self, **sections: dict) -> WebContext:
        return WebContext(make_config(self.data_dir, **sections), self.sessions, self.data_dir)

    def client(self, client: tuple[str, int] = LOOPBACK_CLIENT, base_url: str = "http://localhost", **sections: dict) -> TestClient:
        """The app over this site, called as from `client` with `base_url`'s Host (an allowed name by default)."""
        return TestClient(create_app(self.context(**sections)), client=client, base_url=base_url)


def receive(data_dir: Path, sessions: sessionmaker[Session], queue: JobQueue, files: list[Path]) -> int:
    """Store and index `files` as the SCP would; return the association id."""
    association_id, _ = queue.open_association("MODALITY", "CLARA", "127.0.0.1", 40000)
    indexer = Indexer(sessions)
    total = 0
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        meta = InstanceMeta.from_dataset(ds, str(ds.file_meta.TransferSyntaxUID))
        relpath = instance_relpath(meta.study_instance_uid, meta.series_instance_uid, meta.sop_instance_uid)
        (data_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, data_dir / relpath)
        size = (data_dir / relpath).stat().st_size
        indexer.record(meta, relpath, size, association_id, "covid19_ct", replace=False)
        total += size
    queue.close_association(association_id, "released", len(files), total, 0)
    return association_id


def threshold_masks(hu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Air inside the body split at the image's middle column (image left is the patient's right), opacity inside it."""
    air, _ = ndimage.label(hu < -400)
    outside = np.unique(np.concatenate([air[:, 0, :].ravel(), air[:, -1, :].ravel(), air[:, :, 0].ravel(), air[:, :, -1].ravel()]))
    lungs = (air > 0) & ~np.isin(air, outside)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    half = hu.shape[2] // 2
    labels[:, :, :half][lungs[:, :, :half]] = 1
    labels[:, :, half:][lungs[:, :, half:]] = 2
    opacity = lungs & (hu > -750)
    return labels, opacity


def write_results(data_dir: Path, job_id: int, hu: np.ndarray, spacing: tuple[float, float, float]) -> dict:
    """The worker's result files for `job_id` and the `Job.result` that points at them."""
    labels, opacity = threshold_masks(hu)
    folder = data_dir / "results" / str(job_id)
    folder.mkdir(parents=True)
    np.savez_compressed(folder / "masks.npz", lung_labels=labels, opacity_mask=opacity)
    voxel_ml = float(np.prod(spacing)) / 1000
    lung = {"right": float((labels == 1).sum() * voxel_ml), "left": float((labels == 2).sum() * voxel_ml)}
    lung["total"] = lung["right"] + lung["left"]
    opac = {"right": float((opacity & (labels == 1)).sum() * voxel_ml), "left": float((opacity & (labels == 2)).sum() * voxel_ml)}
    opac["total"] = opac["right"] + opac["left"]
    po = {side: 100 * opac[side] / lung[side] for side in lung}
    measurements = {"lung_volume_ml": lung, "opacity_volume_ml": opac, "opacity_percent": po, "high_opacity_percent": {s: v / 4 for s, v in po.items()}}
    classification = {
        "model_name": "covid19_baseline",
        "model_version": "1",
        "baseline": True,
        "class_names": ["non-COVID", "COVID-19"],
        "scores": [0.73, 0.27],
    }
    (folder / "result.json").write_text(json.dumps({"measurements": measurements, "classification": classification}))
    with (folder / "result.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["measurement", "right", "left", "total"])
        for name, values in measurements.items():
            writer.writerow([name, values["right"], values["left"], values["total"]])
    files = {kind: f"results/{job_id}/{name}" for kind, name in (("csv", "result.csv"), ("json", "result.json"), ("masks", "masks.npz"))}
    return {"files": files, "measurements": measurements, "classification": classification}


def build_site(data_dir: Path, files: list[Path], done: bool) -> Site:
    """Receive `files` as one association, queue and run their job: done with results, or failed."""
    url = f"sqlite:///{data_dir / 'index.sqlite3'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    queue = JobQueue(sessions, "test-node")
    association_id = receive(data_dir, sessions, queue, files)
    (job_id,) = queue.queue_settled(0, now=utcnow() + timedelta(seconds=1))
    claimed = queue.claim("test-node/worker-1")
    assert claimed is not None and claimed.id == job_id
    result: dict = {}
    if done:
        volume = load_series([data_dir / p for p in queue.instance_paths(claimed.series_id)])
        result = write_results(data_dir, job_id, volume.hu, volume.spacing)
        assert queue.finish(claimed, "done", steps={"load": 2.5, "lungs": 4.0, "classify": 0.3}, result=result)
    else:
        assert queue.finish(claimed, "failed", reason="series rejected: too few slices", steps={"load": 0.1})
    with sessions.begin() as session:
        export = Export(
            job_fk=job_id, destination="pacs", sop_instance_uid=f"1.2.826.0.1.{job_id}", sop_class_uid="1.2.840.10008.5.1.4.1.1.66.4",
            path=f"results/{job_id}/seg.dcm", state="failed", attempts=3, last_error="association rejected",
        )
        session.add(export)
        session.flush()
        export_id = export.id
        study_id = session.get_one(Series, claimed.series_id).study_fk
    return Site(data_dir, url, sessions, claimed.series_id, study_id, job_id, association_id, export_id, result)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (never a downloaded browser) through Playwright, with a fresh temporary profile."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """P001 received whole, its job done with results; shared by the tests that only read."""
    return build_site(tmp_path_factory.mktemp("site"), p001_files(), done=True)


@pytest.fixture
def small_site(tmp_path: Path) -> Site:
    """The top 25 slices of P001 (enough for the pipeline to accept) and a failed job, for the tests that change rows."""
    return build_site(tmp_path, p001_files()[-SMALL_SERIES_SLICES:], done=False)
