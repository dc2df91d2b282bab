"""Run the real `tritonserver` (CPU build from the nvidia-pytriton wheel) for tests, and stop it for sure.

`deploy/triton/install-test-server.sh` prepares the binary once (cached under
.cache/pytriton); tests skip only when that fails, saying why.  The server runs
the Python-backend models of a model repository in stub processes that use this
interpreter's environment (found on PATH, with its libpython); the models of
deploy/triton/models import the `dicom_node` of the checkout they lie in.

Usage (any test package):

    with running_tritonserver(REPO / "deploy/triton/models", tmp_path) as triton:
        triton.http_url, triton.grpc_url   # http://127.0.0.1:PORT, grpc://127.0.0.1:PORT
        triton.stop(); triton.start()       # same ports again
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / "deploy" / "triton" / "install-test-server.sh"
MODEL_REPOSITORY = REPO / "deploy" / "triton" / "models"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install_tritonserver() -> Path:
    """The prepared install folder; skips the calling test when the wheel cannot be had."""
    try:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), sys.executable], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        pytest.skip("nvidia-pytriton could not be installed: install-test-server.sh took over 600 s")
    if done.returncode != 0:
        pytest.skip(f"nvidia-pytriton could not be installed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class TritonEndpoints:
    """One tritonserver process on fixed loopback ports that tests may stop and start again."""

    install: Path
    model_repo: Path
    log_path: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        server = self.install / "pytriton" / "tritonserver"
        return [
            str(server / "bin" / "tritonserver"),
            f"--model-repository={self.model_repo}",
            f"--backend-directory={server / 'backends'}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            # All models load at start, as in the default mode; explicit control
            # also lets tests unload and load one (a model being replaced).
            "--model-control-mode=explicit", "--load-model=*",
            "--exit-timeout-secs=5",
            # Unique shared-memory names: several servers (other tests, other
            # engineers) run on this machine at once.  The region grows as needed.
            f"--backend-config=python,shm-region-prefix-name=dicomnode{uuid.uuid4().hex[:12]}_",
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=67108864",
        ]

    def environment(self) -> dict[str, str]:
        # The stub links libpython3.11.so: take this interpreter's, not Debian's
        # (a mix fails with "'_thread.RLock' object has no attribute '_recursion_count'").
        libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(self.install / "nvidia_pytriton.libs")]
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "LD_LIBRARY_PATH": os.pathsep.join([*libdirs, os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep),
            "TCP_NODELAY": "1",
        }

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the server and wait until it and all its models are ready."""
        if self.process is not None:
            raise RuntimeError("tritonserver already running")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGINT (Triton unloads its models and exits), SIGKILL to the group if that takes too long."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_S)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"tritonserver not ready after {timeout_s} s:\n{self.log()[-4000:]}")


@contextmanager
def running_tritonserver(model_repo: Path, tmp_path: Path) -> Iterator[TritonEndpoints]:
    """A ready tritonserver serving `model_repo`, stopped on exit whatever happens."""
    endpoints = TritonEndpoints(install_tritonserver(), model_repo, tmp_path / "tritonserver.log")
    endpoints.start()
    try:
        yield endpoints
    finally:
        endpoints.stop()
