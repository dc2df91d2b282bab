"""One node for the hostile-peer tests, and what every case is followed by: a C-ECHO, a storescu transfer that
must succeed, and a check that everything stored before is unchanged.

The node listens on a plain and a TLS port, allows the AEs the tests send
from (ECHOSCU, STORESCU, INSIDER for the attacker who got an association,
DICOM_NODE for `dicom-node echo/send`), and has short timeouts so that slow
attacks end within a test: 1 s to send an A-ASSOCIATE-RQ, 4 s of network
silence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.dcmtk import echoscu, storescu
from tests.dicom_files import copy_with_new_uid
from tests.export.peers import self_signed, wait_for
from tests.hostile.peer import process_status
from tests.node.index import query
from tests.node_process import NodeProcess, free_port, shared_series

ALLOWED = ["ECHOSCU", "STORESCU", "INSIDER", "DICOM_NODE"]
HANDSHAKE_TIMEOUT = 1.0
NETWORK_TIMEOUT = 4.0


@dataclass(frozen=True)
class Certificates:
    folder: Path
    server: tuple[Path, Path]  # certificate, key; serves as its own CA
    client: tuple[Path, Path]  # the one client certificate the node trusts


@dataclass
class HostileNode:
    node: NodeProcess
    certs: Certificates
    tls_port: int
    source: Path
    stored: dict[str, str] = field(default_factory=dict)  # instance file (relative) -> sha256

    @property
    def port(self) -> int:
        return self.node.port

    @property
    def pid(self) -> int:
        assert self.node.proc is not None
        return self.node.proc.pid

    def status(self) -> dict[str, int]:
        return process_status(self.pid)

    def log_about(self, port: int, pattern: str, timeout: float = 15) -> str:
        """The node's log line about the peer on local `port` that matches `pattern` (waits for it)."""
        regex = re.compile(rf"127\.0\.0\.\d+:{port}\b.*{pattern}")

        def find() -> str | None:
            return next((line for line in self.node.log().splitlines() if regex.search(line)), None)

        return wait_for(find, timeout, f"a log line about port {port} matching {pattern!r}")

    def association_state(self, port: int, timeout: float = 15) -> str:
        """The index's end state of the association from peer `port`, once it has one."""

        def ended() -> str | None:
            rows = query(self.node.data_dir, "SELECT state FROM association WHERE peer_port = ?", port)
            return rows[0][0] if rows and rows[0][0] != "open" else None

        return wait_for(ended, timeout, f"the association from port {port} to end")

    def _files(self) -> dict[str, str]:
        root = self.node.data_dir
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "instances").rglob("*.dcm")}

    def serves(self, folder: Path) -> None:
        """C-ECHO and C-STORE a new instance from allowed AEs; everything stored before is unchanged."""
        echo = echoscu(self.port)
        assert echo.returncode == 0, echo.stdout + echo.stderr
        folder.mkdir(parents=True, exist_ok=True)
        sop_uid = copy_with_new_uid(self.source, folder / "new.dcm")
        store = storescu(self.port, folder / "new.dcm")
        assert store.returncode == 0 and "Success" in store.stdout + store.stderr, store.stdout + store.stderr
        files = self._files()
        assert {name: files.get(name) for name in self.stored} == self.stored, "an instance stored earlier changed or vanished"
        indexed = query(self.node.data_dir, "SELECT path FROM instance WHERE sop_instance_uid = ?", sop_uid)
        assert set(files) - set(self.stored) == {path for (path,) in indexed}, f"expected exactly the new instance {sop_uid}"
        self.stored = files


@pytest.fixture(scope="package")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("certificates")
    return Certificates(
        folder,
        self_signed(folder, "server", "127.0.0.1"),
        self_signed(folder, "client", "trusted-modality"),
    )


@pytest.fixture(scope="package")
def hostile_node(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[HostileNode]:
    source = next(shared_series("covid-ct-md", "P001").glob("*.dcm"))
    tmp = tmp_path_factory.mktemp("hostile-node")
    tls_port = free_port()
    server_cert, server_key = certificates.server
    node = NodeProcess(
        tmp=tmp,
        settings={
            "node": {"log_level": "DEBUG"},  # refusals beyond 50 a minute are logged at DEBUG
            "dicom": {
                "allowed_sources": [{"ae_title": ae} for ae in ALLOWED],
                "handshake_timeout": HANDSHAKE_TIMEOUT,
                "network_timeout": NETWORK_TIMEOUT,
                "tls_port": tls_port,
                "tls_cert_file": str(server_cert),
                "tls_key_file": str(server_key),
                "tls_ca_file": str(certificates.client[0]),
            },
        },
    ).start(timeout=120)
    hostile = HostileNode(node, certificates, tls_port, source)
    try:
        yield hostile
    finally:
        node.stop()


@pytest.fixture
def node(hostile_node: HostileNode) -> HostileNode:
    """The shared node, alive (each test ends with `node.serves(tmp_path)`)."""
    assert hostile_node.node.proc is not None and hostile_node.node.proc.poll() is None, "the node died"
    return hostile_node
