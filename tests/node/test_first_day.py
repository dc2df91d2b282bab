"""An integration engineer's first day, through the real `dicom-node` command: errors say what to do, commands
follow the conventions of the ecosystem, nothing misleads.

One node (no workers: its jobs stay queued) serves the tests that need one; the start-up failures start their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.dcmtk import storescu
from tests.dicom_files import copy_with_new_uid
from tests.export.peers import P001, run_cli, wait_for
from tests.mounts import tmpfs
from tests.node.index import jobs, query, wait_for_jobs
from tests.node_process import REPO, NodeProcess, free_port, wait_for_port, write_toml
from tests.processed_node import ProcessedSeries

ONE_LINE_ERROR = re.compile(r"^dicom-node: .+\n\Z")


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command: exactly one line on stderr, no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert ONE_LINE_ERROR.match(result.stderr), result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    http_port = free_port()
    process = NodeProcess(
        tmp_path_factory.mktemp("first-day"),
        ae="FIRSTDAY",
        settings={"dicom": {"allowed_sources": [{"ae_title": "FIRSTDAY"}, {"ae_title": "MODALITY"}, {"ae_title": "OTHERPACS"}]},
                  "destinations": [{"name": "UNUSED", "ae_title": "UNUSED", "host": "127.0.0.1", "port": 1}]},
        serve_args=("--export-to", "TYPO@pacs.invalid:104", "--http-port", str(http_port), "--log-level", "info"),
    )
    process.start()
    wait_for_port(http_port, 30, process.proc)
    process.http_port = http_port  # type: ignore[attr-defined]
    yield process
    process.stop()


def small_series(folder: Path, count: int = 5) -> tuple[Path, str]:
    """`count` P001 slices as a new series (too few slices: its job is skipped without running a model)."""
    folder.mkdir(parents=True)
    series_uid = pydicom.uid.generate_uid()
    for path in sorted(P001.glob("*.dcm"))[:count]:
        copy_with_new_uid(path, folder / path.name, SeriesInstanceUID=series_uid)
    return folder, series_uid


# Conventions ---------------------------------------------------------------------------------------------------


def test_version_short_help_and_no_type_tags() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"dicom-node \d+\.\d+\.\d+\n", version.stdout)
    for args in (("-h",), ("serve", "-h"), ("jobs", "list", "-h"), ("echo", "--help")):
        shown = run_cli(*args)
        assert shown.returncode == 0 and shown.stdout.startswith("Usage: dicom-node"), shown.stderr
        assert "<bool>" not in shown.stdout and "<int>" not in shown.stdout and "<text>" not in shown.stdout, shown.stdout
    serve = run_cli("serve", "-h").stdout
    for flag in ("--calling-ae AE", "--http-host ADDRESS", "--http-port PORT", "--log-level", "--export-to AE@HOST:PORT"):
        assert flag in serve


def test_invalid_state_is_refused_naming_the_valid_ones(node: NodeProcess) -> None:
    result = node.cli("jobs", "list", "--state", "finished", check=False)
    assert result.returncode == 2
    assert "'finished' is not one of" in result.stderr and "'done'" in result.stderr
    result = node.cli("exports", "list", "--state", "delivered", check=False)
    assert result.returncode == 2 and "'sent'" in result.stderr


def test_read_only_commands_refuse_a_folder_without_an_index(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    for args in (("jobs", "list"), ("jobs", "show", "1"), ("exports", "list", "--json"), ("jobs", "retry", "1")):
        result = run_cli(*args, "--data-dir", str(missing))
        assert result.returncode == 1
        assert f"no index at {missing / 'index.sqlite3'}" in one_line_error(result)
    assert not missing.exists()


def test_an_address_without_port_or_with_an_unknown_host_gets_a_precise_message() -> None:
    result = run_cli("echo", "CLARA@localhost")
    assert result.returncode == 2 and "the port is missing" in result.stderr and "CLARA@localhost:104" in result.stderr
    echoed = run_cli("echo", "PACS2@pacs.invalid:104")
    assert echoed.returncode == 1
    assert "cannot resolve host 'pacs.invalid' of PACS2@pacs.invalid:104" in one_line_error(echoed)
    sent = run_cli("send", str(sorted(P001.glob("*.dcm"))[0]), "--to", "PACS2@pacs.invalid:104")
    assert sent.returncode == 1 and "Traceback" not in sent.stderr
    assert "cannot resolve host 'pacs.invalid'" in sent.stderr


# serve's flags and start-up -------------------------------------------------------------------------------------


def test_serve_flags_and_destination_warnings(node: NodeProcess) -> None:
    health = subprocess.run(
        [sys.executable, "-c", f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{node.http_port}/health').read().decode())"],  # type: ignore[attr-defined]
        capture_output=True, text=True, timeout=30,
    )
    assert '"status":"ok"' in health.stdout.replace(" ", "")
    log = wait_for(lambda: "cannot be resolved" in node.log() and node.log(), 20, "the destination warnings")
    assert " DEBUG " not in log  # --log-level info overrides the config file's DEBUG
    assert "destination TYPO: host 'pacs.invalid' cannot be resolved" in log
    assert "destination UNUSED is in no pipeline's destinations" in log
    assert "Traceback" not in log


def test_calling_ae_defaults_to_the_called_ae(node: NodeProcess, tmp_path: Path) -> None:
    """The node accepts only FIRSTDAY, MODALITY and OTHERPACS: a node called FIRSTDAY calls out as FIRSTDAY, not DICOM_NODE."""
    config = write_toml(tmp_path / "other.toml", {"dicom": {"called_aes": [{"ae_title": "FIRSTDAY"}]}})
    echoed = run_cli("echo", node.address, "--config", str(config), "--json")
    assert echoed.returncode == 0 and json.loads(echoed.stdout)["ok"] is True, echoed.stdout + echoed.stderr
    refused = run_cli("echo", node.address, "--config", str(config), "--calling-ae", "DICOM_NODE")
    assert refused.returncode == 1 and "rejected the association" in one_line_error(refused)


def test_busy_dicom_port_is_named(node: NodeProcess, tmp_path: Path) -> None:
    result = run_cli("serve", "--port", str(node.port), "--data-dir", str(tmp_path / "var"), "--config", str(node.config_path), "--log-level", "info")
    assert result.returncode == 1
    assert f"DICOM port 127.0.0.1:{node.port} is already in use" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_data_folder_that_is_not_writable_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    config = write_toml(tmp_path / "node.toml", {"node": {"data_dir": str(folder)}, "dicom": {"host": "127.0.0.1", "port": free_port()}, "http": {"port": 0}})
    if os.getuid() == 0:  # root writes anywhere but on a read-only file system
        context = tmpfs(folder, 1, read_only=True)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        context = contextlib.nullcontext(folder)
    with context:
        result = run_cli("serve", "--config", str(config))
    assert result.returncode == 1
    assert f"data folder {folder} is not writable" in one_line_error(result)


def test_ctrl_c_during_start_up_stops_without_traceback(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "node.toml", {"node": {"data_dir": str(tmp_path / "var")}, "dicom": {"host": "127.0.0.1"}, "http": {"port": 0}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOM_NODE_")} | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicom_node", "serve", "--config", str(config), "--port", str(free_port()), "--log-level", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    first = proc.stdout.readline()  # type: ignore[union-attr]  # the first log line: the node is starting
    proc.send_signal(signal.SIGINT)
    output = first + proc.communicate(timeout=60)[0]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert proc.returncode == 0, output
    assert "node stopped" in output


# Jobs ------------------------------------------------------------------------------------------------------------


def test_same_instances_from_another_sender_in_another_syntax_are_duplicates(node: NodeProcess, tmp_path: Path) -> None:
    folder, series_uid = small_series(tmp_path / "original")
    assert storescu(node.port, folder, ae=node.ae, calling="MODALITY").returncode == 0
    wait_for_jobs(node.data_dir, 1)
    ((count,),) = query(node.data_dir, "SELECT count(*) FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ?", series_uid)
    stored = {path: path.read_bytes() for path in (node.data_dir / "instances").rglob("*.dcm")}
    # Another PACS holds the same instances decompressed (explicit VR little endian) with its own file meta.
    other = tmp_path / "other"
    other.mkdir()
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.decompress(generate_instance_uid=False)
        ds.file_meta.ImplementationClassUID = "1.2.3.4.5"
        ds.save_as(other / path.name)
    assert storescu(node.port, other, ae=node.ae, calling="OTHERPACS", compressed=False).returncode == 0
    # A later series' job is queued once it settled; a re-run of the first would have been queued by then too.
    marker, marker_uid = small_series(tmp_path / "marker", count=1)
    assert storescu(node.port, marker, ae=node.ae, calling="MODALITY").returncode == 0
    wait_for(lambda: query(node.data_dir, "SELECT j.id FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ?", marker_uid), 60, "the marker's job")
    ((again,),) = query(node.data_dir, "SELECT count(*) FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ?", series_uid)
    assert again == count == 1
    assert {path: path.read_bytes() for path in stored} == stored  # the first copies, untouched
    assert node.log().count("kept the stored copy (same content)") >= 5


def test_jobs_list_show_and_retry_of_a_queued_job(node: NodeProcess, tmp_path: Path) -> None:
    folder, series_uid = small_series(tmp_path / "series")
    assert storescu(node.port, folder, ae=node.ae, calling="MODALITY").returncode == 0
    job_id = wait_for(
        lambda: [row for row in jobs(node.data_dir) if row[0] == series_uid] and query(
            node.data_dir, "SELECT j.id FROM job j JOIN series s ON s.id = j.series_fk WHERE s.series_instance_uid = ?", series_uid
        )[0][0], 30, "the series' job",
    )
    listed = node.cli("jobs", "list").stdout.splitlines()
    assert listed[0].split() == ["ID", "CREATED", "STATE", "PATIENT", "INSTANCES", "RESULT", "SERIES_INSTANCE_UID", "REASON"]
    row = next(line for line in listed if series_uid in line)
    header = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    assert f"({header.PatientID})" in row and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", row) and "queued" in row

    shown = json.loads(node.cli("jobs", "show", str(job_id), "--json").stdout)
    assert shown["state"] == "queued" and shown["created_at"].endswith("+00:00")
    text = node.cli("jobs", "show", str(job_id)).stdout
    assert re.search(r"^state\s+queued$", text, re.M) and re.search(rf"^series_instance_uid\s+{re.escape(series_uid)}$", text, re.M)

    retried = node.cli("jobs", "retry", str(job_id), check=False)
    assert retried.returncode == 1 and f"job {job_id} is queued already" in one_line_error(retried)
    missing = node.cli("jobs", "retry", "99999", check=False)
    assert missing.returncode == 1 and "no job 99999" in one_line_error(missing)


def test_a_done_job_is_listed_with_its_result_rounded(processed_p001: ProcessedSeries) -> None:
    listed = processed_p001.node.cli("jobs", "list", "--state", "done").stdout
    assert re.search(r"(non-COVID|COVID-19) \d+\.\d %, PO \d+\.\d\d %", listed), listed  # as output/display.py writes them
    shown = processed_p001.node.cli("jobs", "show", str(processed_p001.job_id)).stdout
    numbers = re.findall(r"^\S+\s+(-?\d+\.\d+(?:e-?\d+)?)$", shown, re.M)
    assert len(numbers) > 10 and all(len(number.split(".")[1]) <= 3 for number in numbers), numbers
    assert re.search(r"^result\.measurements\.lung_volume_ml\.total\s+\d+\.\d{1,3}$", shown, re.M), shown


def test_no_node_settings_collide_with_the_triton_installer(node: NodeProcess) -> None:
    """The install script's cache variable is not a DICOM_NODE_ setting: a shell that has it set still runs the node."""
    script = (REPO / "deploy" / "triton" / "install-test-server.sh").read_text()
    assert "TRITON_TEST_CACHE" in script and "DICOM_NODE_TRITON_CACHE" not in script
    listed = run_cli("jobs", "list", "--data-dir", str(node.data_dir), env={"TRITON_TEST_CACHE": "/tmp/somewhere"})
    assert listed.returncode == 0, listed.stderr
