"""Start-up checks of the shared data directory, through the real CLI against the local PostgreSQL."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.store.shared_storage import TOKEN_FILE, file_system_type
from tests.node_process import NodeProcess
from tests.postgres import fresh_postgres_schema


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_postgres_schema() as url:
        yield url


def worker(tmp: Path, name: str, database_url: str, data_dir: Path) -> NodeProcess:
    node = NodeProcess(tmp=tmp / name, command="worker")
    node.tmp.mkdir(parents=True)
    node.settings = {"node": {"name": name, "data_dir": str(data_dir), "log_level": "INFO"}, "database": {"url": database_url}}
    return node


def refusal(node: NodeProcess) -> str:
    """Start a worker that must exit 1 by itself; return what it said."""
    with pytest.raises(RuntimeError):
        node.start(timeout=120)
    assert node.proc is not None and node.proc.returncode == 1
    return node.log()


@pytest.mark.postgres
def test_a_worker_that_does_not_see_the_shared_data_directory_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = worker(tmp_path, "worker-1", database_url, shared).start(timeout=120)
    try:
        token = (shared / TOKEN_FILE).read_text().strip()
        assert len(token) == 32, "the first process wrote the database's storage token into the data directory"
        worker(tmp_path, "worker-2", database_url, shared).start(timeout=120).stop()

        said = refusal(worker(tmp_path, "worker-3", database_url, tmp_path / "local-empty"))
        assert "has no storage token" in said and token in said and "Mount the same shared volume" in said
        assert "Traceback" not in said

        other = tmp_path / "other"
        other.mkdir()
        (other / TOKEN_FILE).write_text("0" * 32)
        said = refusal(worker(tmp_path, "worker-4", database_url, other))
        assert f"holds storage token {'0' * 32}" in said and token in said
    finally:
        first.stop()


def test_the_file_system_type_is_read_as_the_kernel_reports_it(tmp_path: Path) -> None:
    expected = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(tmp_path)], capture_output=True, text=True, check=True)
    assert file_system_type(tmp_path) == expected.stdout.strip()
