"""Real DICOM peers for the export tests: Orthanc and a dcmtk storescp that refuses SEG.

Every process is started on free loopback ports with TCP_NODELAY=1 and is
stopped by the fixture that made it, whatever the test did. The node itself
is `tests.node_process.NodeProcess`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.certificates import self_signed
from tests.dcmtk import dcmtk_env, require, storescu
from tests.node_process import REPO, free_port, wait_for_port

P001 = REPO.parent / "shared" / "data" / "covid-ct-md" / "P001"


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until `condition()` is truthy; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class Orthanc:
    """An Orthanc PACS in a temporary folder; stop() and start() keep its ports and storage."""

    def __init__(self, root: Path, ae_title: str = "ORTHANC") -> None:
        self.root = root
        self.ae_title = ae_title
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.process: subprocess.Popen[bytes] | None = None
        storage = root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "orthanc.json"
        self.config: dict[str, Any] = {
            "Name": "dicom-node-test",
            "DicomAet": ae_title,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomModalities": {},
            "ConcurrentJobs": 1,
        }

    def add_modality(self, name: str, ae_title: str, port: int, host: str = "127.0.0.1") -> None:
        """A DICOM peer Orthanc may send to (takes effect at the next start)."""
        self.config["DicomModalities"][name] = [ae_title, host, port]

    @property
    def address(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def start(self) -> None:
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        self.config_path.write_text(json.dumps(self.config))
        log = open(self.root / "orthanc.log", "ab")
        self.process = subprocess.Popen([binary, str(self.config_path)], env=dcmtk_env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._up, 20, "Orthanc's REST API")

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/system", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM: Orthanc closes its index cleanly, which takes a few seconds; SIGKILL in teardown)."""
        _stop(self.process, sig)
        self.process = None

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = httpx.post(self.url + path, content=content, timeout=120)
        response.raise_for_status()
        return response.json()

    def load_series(self, folder: Path) -> str:
        """Store a series folder in Orthanc over DICOM, as stored (one association: seconds, where one REST upload
        per file took 12-35 s); returns its SeriesInstanceUID."""
        files = sorted(folder.glob("*.dcm"))
        sent = storescu(self.dicom_port, *files, ae=self.ae_title, calling="LOADER")
        assert sent.returncode == 0, sent.stderr
        series_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        assert self.lookup(series_uid, "Series") is not None, f"Orthanc did not store series {series_uid}"
        return series_uid

    def count_instances(self) -> int:
        return int(self.get("/statistics")["CountInstances"])

    def lookup(self, uid: str, level: str) -> str | None:
        """Orthanc's id of a study/series/instance UID, or None."""
        for hit in self.post("/tools/lookup", uid.encode()):
            if hit["Type"] == level:
                return str(hit["ID"])
        return None

    def series_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        study = self.lookup(study_uid, "Study")
        return [] if study is None else list(self.get(f"/studies/{study}/series"))

    def sop_instance_uids(self) -> list[str]:
        """Every SOP Instance UID stored, with repetitions if Orthanc held one twice."""
        return [item["MainDicomTags"]["SOPInstanceUID"] for item in self.get("/instances?expand")]

    def send_series(self, modality: str, series_uid: str) -> None:
        """Ask Orthanc to C-STORE a series to one of its modalities (what a PACS auto-routing rule does)."""
        series = self.lookup(series_uid, "Series")
        assert series is not None, f"series {series_uid} not in Orthanc"
        self.post(f"/modalities/{modality}/store", {"Resources": [series], "Synchronous": True})


STRICT_PROFILE = """
[[TransferSyntaxes]]
[Any]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
TransferSyntax3 = JPEGLossless:Non-hierarchical-1stOrderPrediction
[[PresentationContexts]]
[Strict]
PresentationContext1 = VerificationSOPClass\\Any
PresentationContext2 = CTImageStorage\\Any
PresentationContext3 = ComprehensiveSRStorage\\Any
PresentationContext4 = EnhancedSRStorage\\Any
[[Profiles]]
[Strict]
PresentationContexts = Strict
"""


class StrictStoreSCP:
    """dcmtk storescp accepting CT and SR but not SEG: a PACS that refuses a SOP class.

    With `refuse=True` it rejects every association request (A-ASSOCIATE-RJ permanent, no reason given),
    as a PACS does for an AE it does not know.
    """

    def __init__(self, root: Path, ae_title: str = "STRICT", refuse: bool = False) -> None:
        self.root = root
        self.ae_title = ae_title
        self.refuse = refuse
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.received = root / "received"
        self.received.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.root / "strict.cfg"
        config.write_text(STRICT_PROFILE)
        log = open(self.root / "storescp.log", "ab")
        command = [require("storescp"), "-aet", self.ae_title, "-xf", str(config), "Strict", "-od", str(self.received), "-uf"]
        command += ["--refuse"] if self.refuse else []
        self.process = subprocess.Popen([*command, str(self.port)], env=dcmtk_env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port, 10, self.process)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m dicom_node ARGS` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", *args],
        env={k: v for k, v in dcmtk_env().items() if not k.startswith("DICOM_NODE_")} | {"PYTHONPATH": str(REPO)} | (env or {}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class TlsStoreSCP:
    """dcmtk storescp over TLS that requires and verifies a client certificate."""

    def __init__(self, root: Path, client_cert: Path, ae_title: str = "TLSPACS") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.cert, key = self_signed(root, "server", "127.0.0.1")
        self.ae_title = ae_title
        self.port = free_port()
        self.received = root / "received"
        self.received.mkdir()
        command = [require("storescp"), "-aet", ae_title, "+tls", str(key), str(self.cert), "-pw", "+cf", str(client_cert), "-rc",
                   "+xa", "-od", str(self.received), str(self.port)]
        log = open(root / "storescp.log", "ab")
        self.process = subprocess.Popen(command, env=dcmtk_env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for_port(self.port, 10, self.process)

    def stop(self) -> None:
        _stop(self.process)
