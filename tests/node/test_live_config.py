"""Run-time configuration changes reach every receiving process and worker of a running node, without a restart.

A real node (`dicom-node serve`, `dicom.receive_processes = 4`) on SQLite: a source added with the CLI can send
within a second (whichever of the four processes takes its association) and one removed is rejected with
reason 3; a called AE removed while an association to it sends loses nothing of that series; a destination
added over REST gets the next job's results. Every change is in the audit log.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from pathlib import Path

import httpx
import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from phantoms.chest import make_phantom, write_phantom_series
from tests.dcmtk import Storescp, echoscu, storescu
from tests.export.peers import wait_for
from tests.node.index import query, wait_for_finished_job
from tests.node_process import NodeProcess, free_port, wait_for_port

RECEIVE_PROCESSES = 4
TOKEN = "c0nfig-admin"


def audit(node: NodeProcess) -> list[tuple[str, str, str, str]]:
    lines = (node.data_dir / "access.log").read_text().splitlines()
    return [(e["identity"], e["action"], e["kind"], e["name"]) for e in map(json.loads, lines) if e.get("event") == "config"]


def apply_everywhere(node: NodeProcess, change: tuple[str, ...], fragment: str) -> float:
    """Make `change` with the CLI; the seconds from its commit (the audit entry's time) until the last receiving
    process (of the node and the others) logged the new revision that says `fragment`."""
    before = node.log().count(fragment)
    node.cli(*change)
    wait_for(lambda: node.log().count(fragment) >= before + RECEIVE_PROCESSES, 5, f"{fragment!r} in every receiving process", interval=0.01)
    committed = datetime.fromisoformat(json.loads((node.data_dir / "access.log").read_text().splitlines()[-1])["time"])
    applied = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone() for line in node.log().splitlines() if fragment in line]
    return (max(applied[before:]) - committed).total_seconds()


def started(node: NodeProcess) -> NodeProcess:
    node.start()
    wait_for(lambda: node.log().count("receiving process ready") == RECEIVE_PROCESSES - 1, 60, "the other receiving processes")
    return node


def phantom(tmp_path: Path, patient_id: str) -> tuple[Path, list[Path]]:
    folder = tmp_path / patient_id
    write_phantom_series(make_phantom((64, 64, 24), 0.1, seed=3), folder, patient_id=patient_id)
    return folder, sorted(folder.rglob("*.dcm"))


@pytest.mark.slow
def test_a_source_added_with_the_cli_sends_within_a_second_and_one_removed_is_rejected(node_factory) -> None:
    node = started(node_factory(settings={"dicom": {"receive_processes": RECEIVE_PROCESSES, "allowed_sources": [{"ae_title": "MODALITY"}]}}))
    refused = echoscu(node.port, calling="NEWCT")
    assert refused.returncode != 0 and "Calling AE Title Not Recognized" in refused.stdout + refused.stderr

    seconds = apply_everywhere(node, ("source", "add", "NEWCT", 'called_aes=["CLARA"]'), "sources MODALITY, NEWCT;")
    print(f"source added: in force in all {RECEIVE_PROCESSES} receiving processes {seconds:.3f} s after its commit")
    assert seconds < 1.0, f"applied by every receiving process {seconds:.2f} s after the change"
    for _ in range(2 * RECEIVE_PROCESSES):  # associations land on whichever process accepts first
        assert echoscu(node.port, calling="NEWCT").returncode == 0
    assert echoscu(node.port, ae="OTHER", calling="NEWCT").returncode != 0, "its called AEs only"

    assert apply_everywhere(node, ("source", "remove", "NEWCT"), "sources MODALITY;") < 1.0
    for _ in range(RECEIVE_PROCESSES):
        rejected = echoscu(node.port, calling="NEWCT")
        assert rejected.returncode != 0 and "Calling AE Title Not Recognized" in rejected.stdout + rejected.stderr  # reason 3
    who = f"cli:{getpass.getuser()}"
    assert audit(node)[-2:] == [(who, "add", "source", "NEWCT"), (who, "remove", "source", "NEWCT")]
    entries = [json.loads(line) for line in (node.data_dir / "access.log").read_text().splitlines()]
    assert entries[-1]["before"]["called_aes"] == ["CLARA"] and entries[-1]["after"] is None


@pytest.mark.slow
def test_removing_the_called_ae_of_an_association_in_progress_loses_none_of_its_series(node_factory, tmp_path: Path) -> None:
    node = started(node_factory(settings={"dicom": {"receive_processes": RECEIVE_PROCESSES}}))
    assert apply_everywhere(node, ("ae", "add", "SECOND"), "called AEs CLARA, SECOND;") < 1.0
    _, files = phantom(tmp_path, "HALFWAY")
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage, pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="SECOND")
    assert assoc.is_established
    try:
        for path in files[:12]:
            assert assoc.send_c_store(path).Status == 0
        assert apply_everywhere(node, ("ae", "remove", "SECOND"), "called AEs CLARA;") < 1.0
        refused = echoscu(node.port, ae="SECOND", calling="MODALITY")
        assert "Called AE Title Not Recognized" in refused.stdout + refused.stderr  # reason 7 for a new association
        for path in files[12:]:
            assert assoc.send_c_store(path).Status == 0, "the association accepted before the removal goes on"
    finally:
        assoc.release()
    series_uid = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    wait_for(lambda: query(node.data_dir, "SELECT j.instance_count FROM job j JOIN series s ON s.id = j.series_fk "
                                          "WHERE s.series_instance_uid = ?", series_uid), 30, "the series' job")
    assert query(node.data_dir, "SELECT j.instance_count, j.pipeline FROM job j") == [(len(files), "covid19_ct")]


@pytest.mark.slow
def test_a_destination_added_over_rest_gets_the_next_jobs_results_without_a_restart(node_factory, tmp_path: Path) -> None:
    http_port, pacs_port = free_port(), free_port()
    node = started(node_factory(settings={
        "dicom": {"receive_processes": RECEIVE_PROCESSES},
        "jobs": {"workers": 1},
        "export": {"poll_seconds": 0.2},
        "http": {"port": http_port, "tokens": {"admin": TOKEN}},
    }))
    api = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": f"Bearer {TOKEN}", "Host": "localhost"})
    with Storescp(pacs_port, tmp_path / "newpacs", ae="NEWPACS") as pacs:
        wait_for_port(pacs_port, 10, pacs.proc)
        added = api.post("/api/config/destination", json={"name": "NEWPACS", "ae_title": "NEWPACS", "host": "127.0.0.1", "port": pacs_port,
                                                         "pipelines": ["covid19_ct"]})
        assert added.status_code == 201, added.text
        assert api.get("/api/config/destination/cecho/NEWPACS").json()["ok"] is True
        folder, files = phantom(tmp_path, "LIVEDEST")
        assert storescu(node.port, folder, calling="MODALITY").returncode == 0
        job_id, state, reason = wait_for_finished_job(node.data_dir, str(pydicom.dcmread(files[0]).SeriesInstanceUID), timeout=300)
        assert state == "done", reason
        sent = wait_for(lambda: query(node.data_dir, "SELECT count(*) FROM export WHERE job_fk = ? AND destination = 'NEWPACS' "
                                                      "AND state = 'sent'", job_id)[0][0], 60, "the results sent to NEWPACS")
        received = {str(pydicom.dcmread(path, stop_before_pixels=True).Modality) for path in pacs.out_dir.iterdir()}
        assert sent >= 2 and {"SEG", "SR"} <= received
    assert audit(node)[-1] == ("token:admin", "add", "destination", "NEWPACS")
