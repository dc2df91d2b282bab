"""A PACS added after a study was processed gets its results with `dicom-node exports resend`, through the real CLI.

The node runs on a copy of the session's processed P001 (index and result files), so P001's own job is untouched
and no pipeline runs here.
"""

from __future__ import annotations

import json

import shutil
import sqlite3
from pathlib import Path

import pydicom

from tests.dcmtk import Storescp
from tests.export.peers import wait_for
from tests.node_process import NodeProcess, free_port, wait_for_port
from tests.processed_node import ProcessedSeries


def copy_data_dir(source: Path, target: Path, job_id: int) -> None:
    """The index (a consistent snapshot of the live database), the storage token that pairs it with its data folder,
    and the job's result files."""
    target.mkdir(parents=True)
    live = sqlite3.connect(source / "index.sqlite3")
    copy = sqlite3.connect(target / "index.sqlite3")
    try:
        live.backup(copy)
    finally:
        live.close()
        copy.close()
    shutil.copy2(source / ".dicom-node-storage", target / ".dicom-node-storage")
    shutil.copytree(source / "results" / str(job_id), target / "results" / str(job_id))


def test_resend_a_done_jobs_results_to_a_new_destination(processed_p001: ProcessedSeries, tmp_path: Path) -> None:
    assert processed_p001.state == "done", processed_p001.reason
    peer_port = free_port()
    with Storescp(peer_port, tmp_path / "newpacs", ae="NEWPACS") as pacs:
        wait_for_port(peer_port, 10, pacs.proc)
        new_pacs = {"name": "NEWPACS", "ae_title": "NEWPACS", "host": "127.0.0.1", "port": peer_port}
        node = NodeProcess(tmp_path / "node", settings={"destinations": [new_pacs], "pipelines": {"covid19_ct": {"destinations": ["NEWPACS"]}}})
        node.tmp.mkdir()
        copy_data_dir(processed_p001.node.data_dir, node.data_dir, processed_p001.job_id)
        node.start(timeout=90)
        try:
            unknown = node.cli("exports", "resend", str(processed_p001.job_id), "--to", "OLDPACS", check=False)
            assert unknown.returncode == 2 and "destination 'OLDPACS' is not in the configuration (configured: NEWPACS)" in unknown.stderr

            shown = json.loads(node.cli("jobs", "show", str(processed_p001.job_id), "--json").stdout)
            count = 3 + len(shown["result"]["secondary_capture"])  # SEG, SR, the summary page and the key images
            queued = node.cli("exports", "resend", str(processed_p001.job_id), "--to", "NEWPACS")
            assert f"{count} result object(s) of job {processed_p001.job_id} queued for NEWPACS" in queued.stdout
            received = wait_for(lambda: len(list(pacs.out_dir.iterdir())) >= count and list(pacs.out_dir.iterdir()), 60, "the results at NEWPACS")
            headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in received]
            assert sorted(h.Modality for h in headers) == sorted(["SEG", "SR"] + ["OT"] * (count - 2))
            sent = {str(h.SOPInstanceUID) for h in headers}
            summary_page = pydicom.dcmread(node.data_dir / shown["result"]["summary"], stop_before_pixels=True)
            assert str(summary_page.SOPInstanceUID) in sent

            again = node.cli("exports", "resend", str(processed_p001.job_id), "--to", "NEWPACS")
            assert "nothing queued" in again.stdout
        finally:
            node.stop()
