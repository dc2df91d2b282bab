"""dcmtk's findscu, movescu and getscu as the node's Query/Retrieve peers (a workstation that may query)."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from tests.dcmtk import dcmtk_env, require

QR_AE = "QRSCU"  # the calling AE the tests' nodes allow to query and retrieve


@dataclass(frozen=True)
class FindResult:
    returncode: int
    answers: list[Dataset]
    output: str  # stdout and stderr (-v: the final status is there)


def _keys(keys: tuple[str, ...]) -> list[str]:
    return [arg for key in keys for arg in ("-k", key)]


def find(port: int, model: str, *keys: str, calling: str = QR_AE, extra: tuple[str, ...] = ()) -> FindResult:
    """findscu with `model` -S (Study Root) or -P (Patient Root) and keys as `Keyword=value` (or `Keyword` to return it)."""
    with tempfile.TemporaryDirectory() as out:
        args = [require("findscu"), "-v", "-aet", calling, "-aec", "CLARA", "-to", "30", model, "-X", "-od", out, *extra, *_keys(keys), "127.0.0.1", str(port)]
        done = subprocess.run(args, env=dcmtk_env(), capture_output=True, text=True, timeout=60)
        answers = [pydicom.dcmread(path) for path in sorted(Path(out).glob("rsp*.dcm"))]
    return FindResult(done.returncode, answers, done.stdout + done.stderr)


def findscu(port: int, model: str, *keys: str) -> list[Dataset]:
    """The answers of a query that must succeed."""
    result = find(port, model, *keys)
    assert result.returncode == 0 and "(Success)" in result.output, result.output[-3000:]
    return result.answers


def movescu(port: int, destination: str, destination_port: int, out: Path, model: str, *keys: str, calling: str = QR_AE) -> subprocess.CompletedProcess[str]:
    """movescu asking the node to send to `destination`, which is movescu itself listening on `destination_port`."""
    args = [require("movescu"), "-v", "-aet", calling, "-aec", "CLARA", "-aem", destination, "+P", str(destination_port), "-od", str(out), "-to", "30", model,
            *_keys(keys), "127.0.0.1", str(port)]
    return subprocess.run(args, env=dcmtk_env(), capture_output=True, text=True, timeout=120)


def getscu(port: int, out: Path, model: str, *keys: str, calling: str = QR_AE) -> subprocess.CompletedProcess[str]:
    args = [require("getscu"), "-v", "-aet", calling, "-aec", "CLARA", "-od", str(out), "-to", "30", model, *_keys(keys), "127.0.0.1", str(port)]
    return subprocess.run(args, env=dcmtk_env(), capture_output=True, text=True, timeout=120)
