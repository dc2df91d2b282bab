"""What reaches the PACS is the truth about the complete series, with a real Orthanc (`OverwriteInstances: false`, as
most PACS: a later object under a UID it holds is ignored) and the real pipeline on A0002-B40f (30 slices).

- 24 slices on an aborted association, then all 30: no result of the 24 slices reaches Orthanc; it gets the 30-slice
  results once.
- The unchanged series sent again: no job, no new UIDs, nothing new in Orthanc; the log says what to do instead.
- One slice replaced (same SOP Instance UID, other pixels): a new job whose results come under new UIDs, its SR names
  the earlier SR as predecessor, the earlier objects are listed as superseded and withdrawn by an IOCM rejection note.
- With a grace period that runs out before the series is completed: the 24-slice result is sent marked incomplete, and
  the 30-slice result replaces it the same way.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest

from tests.dcmtk import storescu
from tests.dicom_senders import send_then_abort
from tests.export.conftest import export_rows
from tests.export.peers import Orthanc, wait_for
from tests.node.index import jobs
from tests.node_process import NodeProcess, shared_series

pytestmark = pytest.mark.slow

B40F = shared_series("lung-pet-ct-dx", "A0002-B40f")
JOB_SECONDS = 300  # the pipeline with the embedded models, on a shared 2-core machine


def node_settings(pacs: Orthanc, grace: float) -> dict:
    return {
        "jobs": {"workers": 1, "settle_seconds": 0.5, "poll_seconds": 0.2, "incomplete_grace_seconds": grace},
        "destinations": [{"name": "PACS", "ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.dicom_port, "rejection_notes": True}],
        "pipelines": {"covid19_ct": {"destinations": ["PACS"]}},
        "export": {"retry_initial_seconds": 0.2, "retry_max_seconds": 1.0, "poll_seconds": 0.1, "lease_seconds": 3.0},
    }


def done_and_sent(node: NodeProcess, job_count: int) -> bool:
    states = [state for _, state, _ in jobs(node.data_dir)]
    rows = export_rows(node.data_dir)
    return len(states) == job_count and states[-1] in ("done", "failed", "skipped") and not {r["state"] for r in rows} & {"pending", "sending"}


def sent_uids(node: NodeProcess, state: str = "sent") -> set[str]:
    return {row["sop_instance_uid"] for row in export_rows(node.data_dir) if row["state"] == state}


def in_orthanc(pacs: Orthanc) -> dict[str, pydicom.Dataset]:
    """Every instance Orthanc holds, by SOP Instance UID (each once), read back as DICOM."""
    uids = pacs.sop_instance_uids()
    assert len(uids) == len(set(uids)), "an instance is in Orthanc twice"
    found = {}
    for uid in uids:
        response = httpx.get(f"{pacs.url}/instances/{pacs.lookup(uid, 'Instance')}/file", timeout=30)
        response.raise_for_status()
        found[uid] = pydicom.dcmread(io.BytesIO(response.content))
    return found


def by_modality(objects: dict[str, pydicom.Dataset], modality: str) -> list[pydicom.Dataset]:
    return [ds for ds in objects.values() if ds.Modality == modality]


def comments(sr: pydicom.Dataset) -> list[str]:
    return [str(item.TextValue) for item in sr.ContentSequence if item.ValueType == "TEXT"]


def predecessor_uid(sr: pydicom.Dataset) -> str | None:
    if "PredecessorDocumentsSequence" not in sr:
        return None
    return str(sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


@pytest.fixture
def pacs(orthanc_factory: Callable[..., Orthanc]) -> Orthanc:
    return orthanc_factory()


def test_a_half_sent_series_reaches_the_pacs_only_complete_and_new_content_supersedes_the_old(
    pacs: Orthanc, node_factory: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    node = node_factory(settings=node_settings(pacs, grace=3600)).start()
    files = sorted(B40F.glob("*.dcm"))
    assert send_then_abort(node.port, files[:24]) == 24
    time.sleep(2)
    assert jobs(node.data_dir) == [] and pacs.count_instances() == 0, "nothing of the 24-slice state"

    assert storescu(node.port, B40F, compressed=False).returncode == 0
    wait_for(lambda: done_and_sent(node, 1), JOB_SECONDS, "the 30-slice job and its exports", interval=0.5)
    [(_, state, count)] = jobs(node.data_dir)
    assert (state, count) == ("done", 30)
    first = in_orthanc(pacs)
    assert set(first) == sent_uids(node), "Orthanc holds exactly the 30-slice results"
    [sr] = by_modality(first, "SR")
    assert predecessor_uid(sr) is None and not [c for c in comments(sr) if "incomplete" in c]

    # The unchanged series again: nothing to do, nothing new at the PACS, one line that says what to do instead.
    assert storescu(node.port, B40F, compressed=False).returncode == 0
    time.sleep(3)
    assert len(jobs(node.data_dir)) == 1 and set(in_orthanc(pacs)) == set(first)
    assert "already processed (job 1): nothing new to process; `dicom-node exports resend 1 --to DESTINATION`" in node.log()

    # One slice replaced: same SOP Instance UID, other pixels.
    changed = tmp_path / "changed.dcm"
    ds = pydicom.dcmread(files[12])
    pixels = ds.pixel_array.copy()
    pixels[200:260, 200:260] = np.clip(pixels[200:260, 200:260].astype(np.int32) + 300, 0, np.iinfo(pixels.dtype).max)
    ds.PixelData = pixels.astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(changed)
    assert storescu(node.port, changed, compressed=False).returncode == 0
    wait_for(lambda: done_and_sent(node, 2), JOB_SECONDS, "the job on the changed series", interval=0.5)
    assert [state for _, state, _ in jobs(node.data_dir)] == ["superseded", "done"]
    now = in_orthanc(pacs)
    new = set(now) - set(first)
    assert new and not set(first) - set(now), "Orthanc keeps the earlier objects; the new ones come under new UIDs"
    [new_sr] = [ds for uid, ds in now.items() if uid in new and ds.Modality == "SR"]
    assert predecessor_uid(new_sr) == str(sr.SOPInstanceUID)
    assert any(c.startswith("Replaces the result of ") for c in comments(new_sr))
    assert sent_uids(node, "superseded") == set(first), "the earlier objects are listed as superseded"
    [note] = [ds for uid, ds in now.items() if uid in new and ds.Modality == "KO"]
    assert note.ConceptNameCodeSequence[0].CodeValue == "113001"
    withdrawn = {ref.ReferencedSOPInstanceUID for s in note.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence for ref in s.ReferencedSOPSequence}
    assert withdrawn == set(first)
    listed = json.loads(node.cli("exports", "list", "--state", "superseded", "--json").stdout)
    assert {row["sop_instance_uid"] for row in listed} == set(first) and {row["job_id"] for row in listed} == {1}


def test_a_series_completed_after_the_grace_period_replaces_its_incomplete_result(
    pacs: Orthanc, node_factory: Callable[..., NodeProcess]
) -> None:
    node = node_factory(settings=node_settings(pacs, grace=1.0)).start()
    files = sorted(B40F.glob("*.dcm"))
    assert send_then_abort(node.port, files[:24]) == 24
    wait_for(lambda: done_and_sent(node, 1), JOB_SECONDS, "the incomplete job and its exports", interval=0.5)
    assert [(state, count) for _, state, count in jobs(node.data_dir)] == [("done", 24)]
    first = in_orthanc(pacs)
    [sr] = by_modality(first, "SR")
    assert any(c.startswith("Input possibly incomplete: not completed by a normal release within 1 s") for c in comments(sr))

    assert storescu(node.port, B40F, compressed=False).returncode == 0
    wait_for(lambda: done_and_sent(node, 2), JOB_SECONDS, "the complete job and its exports", interval=0.5)
    assert [(state, count) for _, state, count in jobs(node.data_dir)] == [("superseded", 24), ("done", 30)]
    now = in_orthanc(pacs)
    current = sent_uids(node)
    [new_sr] = [now[uid] for uid in current if now[uid].Modality == "SR"]
    assert predecessor_uid(new_sr) == str(sr.SOPInstanceUID) and not [c for c in comments(new_sr) if "incomplete" in c]
    assert sent_uids(node, "superseded") == set(first)
    [note] = [now[uid] for uid in current if now[uid].Modality == "KO"]
    withdrawn = {ref.ReferencedSOPInstanceUID for s in note.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence for ref in s.ReferencedSOPSequence}
    assert withdrawn == set(first) and set(now) == set(first) | current
