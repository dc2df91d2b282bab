"""A source PACS for on-request processing: Orthanc (C-FIND/C-MOVE/C-GET, and WADO-RS through its DICOMweb plugin)
holding real series, and a node that has it as a source three times over, once per retrieve method."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.export.peers import Orthanc, wait_for
from tests.node_process import NodeProcess, free_port, shared_series, wait_for_port

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
A0002_B40F = ("lung-pet-ct-dx", "A0002-B40f")
A0002_B70F = ("lung-pet-ct-dx", "A0002-B70f")
PIPELINE_SECONDS = 240  # a series through the embedded models on a shared 2-core machine


class SourcePacs(Orthanc):
    """Orthanc as a source: any AE may query and retrieve; the DICOMweb plugin serves WADO-RS under /dicom-web."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        if not DICOMWEB_PLUGIN.exists():
            pytest.skip(f"{DICOMWEB_PLUGIN} missing: apt-get install orthanc-dicomweb (make system-deps)")
        self.config |= {
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def load_copy(self, folder: Path, tmp: Path, new_uids: str = "", **attributes: Any) -> str:
        """Store the series with some attributes changed (e.g. an AccessionNumber the data lacks); pixel data as stored.
        `new_uids`: also give it study, series and instance UIDs of its own, derived from the originals and this text
        (the same real images as another patient's study)."""
        copy = tmp / folder.name
        copy.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(path)
            for keyword, value in attributes.items():
                setattr(ds, keyword, value)
            if new_uids:
                for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                    setattr(ds, keyword, generate_uid(entropy_srcs=[new_uids, str(getattr(ds, keyword))]))
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(copy / path.name, enforce_file_format=True)
        try:
            return self.load_series(copy)
        finally:
            shutil.rmtree(copy)

    def set_modality(self, name: str, ae_title: str, port: int) -> None:
        """Known from now on, and after a restart."""
        self.add_modality(name, ae_title, port)
        if self.process is not None:
            httpx.put(f"{self.url}/modalities/{name}", json={"AET": ae_title, "Host": "127.0.0.1", "Port": port}, timeout=10).raise_for_status()

    def remove_modality(self, name: str) -> None:
        self.config["DicomModalities"].pop(name, None)
        httpx.delete(f"{self.url}/modalities/{name}", timeout=10).raise_for_status()

    def objects_in_study(self, study_uid: str) -> dict[str, int]:
        """Modality -> instance count of each series in the study (repeated modalities summed)."""
        counts: dict[str, int] = {}
        for series in self.series_of_study(study_uid):
            modality = series["MainDicomTags"].get("Modality", "")
            counts[modality] = counts.get(modality, 0) + len(series["Instances"])
        return counts


def node_settings(pacs: SourcePacs, **retrieve: Any) -> dict[str, Any]:
    """Orthanc three times: C-MOVE (and the results' destination), C-GET, WADO-RS."""
    where = {"ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.dicom_port}
    return {
        "jobs": {"workers": 1, "settle_seconds": 0.5, "poll_seconds": 0.2},
        "export": {"poll_seconds": 0.1, "retry_initial_seconds": 0.2, "retry_max_seconds": 1.0, "connection_timeout": 2.0},
        "retrieve": {"poll_seconds": 0.2, "idle_timeout_seconds": 5.0, "retry_initial_seconds": 0.5, "retry_max_seconds": 1.0,
                     "connection_timeout": 2.0, **retrieve},
        "http": {"port": free_port(), "host": "127.0.0.1"},
        "destinations": [
            {"name": "PACS", **where, "retrieve_method": "C-MOVE"},
            {"name": "PACS_GET", **where, "retrieve_method": "C-GET"},
            {"name": "PACS_WADO", **where, "retrieve_method": "WADO-RS", "wado_rs_url": pacs.dicomweb},
        ],
        "pipelines": {"covid19_ct": {"destinations": ["PACS"]}},
    }


class Api:
    """The node's /api/inference as a client uses it."""

    def __init__(self, node: NodeProcess) -> None:
        self.url = f"http://127.0.0.1:{node.settings['http']['port']}/api/inference"

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url, json=body, timeout=30)

    def status(self, transaction_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/{transaction_id}", timeout=30)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def wait_final(self, transaction_id: str, timeout: float) -> dict[str, Any]:
        return wait_for(lambda: (s := self.status(transaction_id))["state"] in ("done", "failed", "cancelled") and s, timeout, f"request {transaction_id} to end", 0.3)


def body(transaction_id: str, source: str, details: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "transactionID": transaction_id,
        "inputMetadata": {"details": details},
        "inputResources": [
            {"interface": "Algorithm", "connectionDetails": {"name": "covid19_ct"}},
            {"interface": "DICOMweb" if source.endswith("WADO") else "DIMSE", "connectionDetails": {"name": source}},
        ],
        **extra,
    }


@pytest.fixture
def fresh_pacs(tmp_path: Path) -> Iterator[SourcePacs]:
    orthanc = SourcePacs(tmp_path / "orthanc")
    orthanc.start()
    yield orthanc
    orthanc.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourcePacs]:
    orthanc = SourcePacs(tmp_path_factory.mktemp("orthanc"))
    orthanc.start()
    yield orthanc
    orthanc.stop(signal.SIGKILL)


def start_node(tmp: Path, pacs: SourcePacs, **retrieve: Any) -> NodeProcess:
    """A node with Orthanc as its source (Orthanc knows it as CLARA, its C-MOVE destination)."""
    tmp.mkdir(parents=True, exist_ok=True)
    node = NodeProcess(tmp=tmp, settings=node_settings(pacs, **retrieve))
    pacs.set_modality("CLARA", node.ae, node.port)
    node.start()
    wait_for_port(node.settings["http"]["port"], 30, node.proc)  # the HTTP server starts after the DICOM port
    return node


def series_path(parts: tuple[str, str]) -> Path:
    return shared_series(*parts)
