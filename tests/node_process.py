"""Start the real node through its CLI in a subprocess, on a free loopback port, and stop it for sure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
STARTED: list[NodeProcess] = []  # every node a test started, for `stop_the_nodes_a_test_left_running`


def shared_series(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is not available", allow_module_level=True)  # also where a module names its series
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout} s")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def write_toml(path: Path, config: dict[str, Any]) -> Path:
    """Write a config dict of sections (and top-level arrays of tables) as TOML."""
    lines = []
    for section, body in config.items():
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())  # the test's own config must be valid TOML
    return path


@dataclass
class NodeProcess:
    """A `dicom-node serve` (or `worker`) subprocess with its own data dir, config and log."""

    tmp: Path
    command: str = "serve"
    ae: str = "CLARA"
    bind_ae: bool = True  # pass `--ae` (which binds `ae` to the COVID-19 pipeline alone); False: the config's called AEs
    settings: dict[str, Any] = field(default_factory=dict)
    serve_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    umask: int = -1  # the process umask to start the node with; -1: the test runner's
    code: Path = REPO  # the copy of the code to run (the benchmarks' baseline runs another revision's)
    proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.tmp / "var"

    @property
    def log_path(self) -> Path:
        return self.tmp / "node.log"

    @property
    def config_path(self) -> Path:
        return self.tmp / "dicom-node.toml"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_NODE_")}
        env["PYTHONPATH"] = str(self.code)
        # `python -m` would otherwise import dicom_node from the current directory first, whatever PYTHONPATH says.
        env["PYTHONSAFEPATH"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dicom_node", *args, "--config", str(self.config_path)],
            env=self.env(), capture_output=True, text=True, timeout=timeout, check=check,
        )

    def start(self, timeout: float = 90) -> NodeProcess:
        config: dict[str, Any] = {
            "node": {"data_dir": str(self.data_dir), "log_level": "DEBUG"},
            "dicom": {"host": "127.0.0.1", "min_free_disk_mb": 1},
            "jobs": {"settle_seconds": 1.0, "poll_seconds": 0.2, "workers": 0},
            "http": {"port": 0},
        }
        for section, values in self.settings.items():
            if isinstance(values, dict):
                config[section] = {**config.get(section, {}), **values}
            else:
                config[section] = values
        write_toml(self.config_path, config)
        log = open(self.log_path, "a")
        ae = ["--ae", self.ae] if self.bind_ae else []
        command = ["serve", *ae, "--port", str(self.port)] if self.command == "serve" else [self.command]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicom_node", *command, "--config", str(self.config_path), *self.serve_args],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, umask=self.umask,
        )
        if not any(node is self for node in STARTED):  # a restart keeps the owner of its first start
            STARTED.append(self)
        try:
            if self.command == "serve":
                wait_for_port(self.port, timeout, self.proc)
            else:
                self._wait_for_log(f"pid {self.proc.pid}", timeout)
        except Exception:
            self.stop()
            raise RuntimeError(f"node did not start; log:\n{self.log()}")
        return self

    def _wait_for_log(self, text: str, timeout: float) -> None:
        """A process without a DICOM port is up once its log says it is ready (the line names its pid)."""
        deadline = time.monotonic() + timeout
        while not any("ready as" in line and text in line for line in self.log().splitlines()):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout} s")
            time.sleep(0.1)

    @property
    def address(self) -> str:
        """The node as `dicom-node send --to` and Orthanc's modality list write it."""
        return f"{self.ae}@127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the node gets no chance to clean up, as in a power cut of the process."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture(autouse=True)
def stop_the_nodes_a_test_left_running() -> Iterator[None]:
    """A node started in a test (not by a wider fixture, which stops its own) is stopped when the test ends, whether
    or not the test stops it: a forgotten node would poll its database for the rest of the session and load CI."""
    before = len(STARTED)
    yield
    for node in STARTED[before:]:
        node.stop()
    del STARTED[before:]


@pytest.fixture
def node_factory(tmp_path: Path):
    nodes: list[NodeProcess] = []

    def make(**kwargs: Any) -> NodeProcess:
        node = NodeProcess(tmp=tmp_path / f"node{len(nodes)}", **kwargs)
        node.tmp.mkdir(parents=True)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()
