"""Run dcmtk's command-line tools as real DICOM peers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def dcmtk_env() -> dict[str, str]:
    # Without TCP_NODELAY dcmtk waits for delayed ACKs: ~44 ms per image.
    return {**os.environ, "TCP_NODELAY": "1"}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (apt-get install dcmtk)")
    return path


def storescu(port: int, *paths: Path, ae: str = "CLARA", calling: str = "STORESCU", compressed: bool = True, timeout: float = 120, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Send files/folders; with `compressed`, files go as stored (-xs +sd: JPEG lossless stays JPEG lossless)."""
    args = [require("storescu"), "-v", "-aet", calling, "-aec", ae, "-to", "30", "-ta", "30", "-td", "30"]
    if compressed:
        args += ["-xs"]
    args += ["+sd", "+r", *extra, "127.0.0.1", str(port), *map(str, paths)]
    return subprocess.run(args, env=dcmtk_env(), capture_output=True, text=True, timeout=timeout)


def echoscu(port: int, ae: str = "CLARA", calling: str = "ECHOSCU", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    args = [require("echoscu"), "-aet", calling, "-aec", ae, "-to", "10", *extra, "127.0.0.1", str(port)]
    return subprocess.run(args, env=dcmtk_env(), capture_output=True, text=True, timeout=30)


class Storescp:
    """dcmtk's storescp in bit-preserving mode (+B): it writes each data set exactly as it came off the wire."""

    def __init__(self, port: int, out_dir: Path, ae: str = "CLARA") -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.proc = subprocess.Popen(
            [require("storescp"), "-aet", ae, "+xa", "+B", "-od", str(out_dir), "-uf", str(port)],
            env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> "Storescp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
