"""Bad senders and bad data get the standard answers, and the node keeps serving the next association."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage

from dicom_node.store.files import encode_file_header
from tests.dcmtk import echoscu, storescu
from tests.node.index import query
from tests.node_process import shared_series

B70F = ("lung-pet-ct-dx", "A0002-B70f")


def part10_file(path: Path, sop_uid: str, dataset: bytes) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.write_bytes(encode_file_header(meta) + dataset)
    return path


def send_file(port: int, path: Path) -> int:
    """C-STORE a file as its raw bytes (no decoding on our side), the way a broken modality might."""
    ae = AE(ae_title="BROKEN")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="CLARA")
    assert assoc.is_established
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        status = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()
    return int(status.Status)


def encoded_without_sop_uid(source: Path) -> bytes:
    ds = pydicom.dcmread(source)
    del ds.SOPInstanceUID
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False  # explicit VR little endian, as read
    pydicom.filewriter.write_dataset(buffer, ds)
    return buffer.getvalue()


def test_unknown_calling_and_called_ae_are_rejected_and_logged(node_factory) -> None:
    node = node_factory(settings={"dicom": {"allowed_sources": [{"ae_title": "MODALITY1"}, {"ae_title": "PACS", "host": "10.9.9.9"}]}}).start()
    refused = echoscu(node.port, calling="INTRUDER")
    assert refused.returncode != 0 and "Association Rejected" in refused.stderr + refused.stdout
    assert echoscu(node.port, calling="PACS").returncode != 0, "right AE from the wrong host"
    assert echoscu(node.port, ae="NOTUS", calling="MODALITY1").returncode != 0
    assert echoscu(node.port, calling="MODALITY1").returncode == 0
    log = node.log()
    assert "INTRUDER@127.0.0.1" in log and "not an allowed source" in log
    assert "called AE 'NOTUS' is not one of ours" in log


def test_garbage_and_incomplete_data_sets_are_refused_with_their_status(node_factory, tmp_path: Path) -> None:
    node = node_factory().start()
    source = next(shared_series(*B70F).glob("*.dcm"))
    garbage = part10_file(tmp_path / "garbage.dcm", generate_uid(), b"%PDF-1.4 a report sent to the wrong place\n" * 64)
    assert send_file(node.port, garbage) == 0xC210
    no_uid = part10_file(tmp_path / "nouid.dcm", generate_uid(), encoded_without_sop_uid(source))
    assert send_file(node.port, no_uid) == 0xC211
    assert query(node.data_dir, "SELECT count(*) FROM instance") == [(0,)]
    assert not list((node.data_dir / "instances").rglob("*.dcm")) if (node.data_dir / "instances").exists() else True
    # the node keeps serving
    assert storescu(node.port, source, compressed=False).returncode == 0
    assert query(node.data_dir, "SELECT count(*) FROM instance") == [(1,)]


def test_full_disk_answers_out_of_resources_and_stores_nothing(node_factory) -> None:
    node = node_factory(settings={"dicom": {"min_free_disk_mb": 2**40}}).start()
    source = next(shared_series(*B70F).glob("*.dcm"))
    result = storescu(node.port, source, compressed=False)
    assert "Received Store Response (Refused: OutOfResources)" in result.stdout + result.stderr, result.stdout + result.stderr
    assert query(node.data_dir, "SELECT count(*) FROM instance") == [(0,)]
    assert "free disk below" in node.log()
    assert echoscu(node.port).returncode == 0


@pytest.mark.parametrize("policy, expect_new_job", [("overwrite", True), ("keep-first", False)])
def test_duplicates_follow_the_documented_policy(node_factory, tmp_path: Path, policy: str, expect_new_job: bool) -> None:
    from tests.node.index import wait_for_jobs, jobs

    node = node_factory(settings={"dicom": {"duplicate_policy": policy}}).start()
    source = next(shared_series(*B70F).glob("*.dcm"))
    assert storescu(node.port, source, compressed=False).returncode == 0
    wait_for_jobs(node.data_dir, 1)
    # an identical re-send changes nothing under any policy
    assert storescu(node.port, source, compressed=False).returncode == 0
    # a corrected copy under the same UID
    ds = pydicom.dcmread(source)
    ds.SeriesDescription = "corrected"
    corrected = tmp_path / "corrected.dcm"
    ds.save_as(corrected)
    assert storescu(node.port, corrected, compressed=False).returncode == 0
    import time

    time.sleep(2.5)
    states = [state for _, state, _ in jobs(node.data_dir)]
    assert states == (["superseded", "queued"] if expect_new_job else ["queued"])
    assert query(node.data_dir, "SELECT count(*) FROM instance") == [(1,)]


@pytest.mark.parametrize("left", ["whole", "half written"])
def test_a_file_left_by_a_crash_before_its_row_does_not_pass_for_a_duplicate(node_factory, left: str) -> None:
    """A crash before the commit leaves a file the sender never saw acknowledged (whole: after its fsync; half
    written: during the write of a new instance, which is created under its final name): its re-send is stored."""
    from dicom_node.store.files import instance_relpath

    node = node_factory().start()
    source = next(shared_series(*B70F).glob("*.dcm"))
    ds = pydicom.dcmread(source)
    orphan = node.data_dir / instance_relpath(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    orphan.parent.mkdir(parents=True)
    data = source.read_bytes()
    orphan.write_bytes(data if left == "whole" else data[: len(data) // 2])
    assert storescu(node.port, source, compressed=False).returncode == 0
    assert query(node.data_dir, "SELECT sop_instance_uid FROM instance") == [(ds.SOPInstanceUID,)]
    assert pydicom.dcmread(orphan).PixelData == ds.PixelData


def test_a_uid_re_sent_in_another_series_moves_there_under_overwrite(node_factory, tmp_path: Path) -> None:
    node = node_factory().start()
    source = next(shared_series(*B70F).glob("*.dcm"))
    assert storescu(node.port, source, compressed=False).returncode == 0
    ds = pydicom.dcmread(source)
    ds.SeriesInstanceUID = generate_uid()
    moved = tmp_path / "moved.dcm"
    ds.save_as(moved)
    assert storescu(node.port, moved, compressed=False).returncode == 0
    rows = query(node.data_dir, "SELECT s.series_instance_uid, i.path FROM instance i JOIN series s ON s.id = i.series_fk")
    assert [uid for uid, _ in rows] == [ds.SeriesInstanceUID]
    assert len(list((node.data_dir / "instances").rglob("*.dcm"))) == 1, "the copy in the old series is removed"
