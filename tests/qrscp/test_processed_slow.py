"""The Query/Retrieve SCP against a node holding P001 and normal001 and their results (SEG, SR, summary page, key
images): dcmtk findscu, movescu and getscu, and Orthanc querying the node as one of its modalities.

Slow: both series go through the pipeline (minutes on the shared 2-core machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.dcmtk import storescu
from tests.export.peers import Orthanc
from tests.node.index import wait_for_finished_job
from tests.node_process import NodeProcess, free_port, shared_series
from tests.qrscp.dcmtk_qr import QR_AE, findscu, getscu, movescu

pytestmark = pytest.mark.slow

SEG = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"  # the report the node writes
PIPELINE_SECONDS = 480  # two series through the embedded models on a shared 2-core machine


@dataclass(frozen=True)
class ProcessedNode:
    node: NodeProcess
    orthanc: Orthanc
    studies: dict[str, str]  # patient folder -> StudyInstanceUID
    workstation_port: int


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessedNode]:
    root = tmp_path_factory.mktemp("qr-processed")
    orthanc = Orthanc(root / "orthanc")
    workstation_port = free_port()
    node = NodeProcess(
        root / "node",
        settings={
            "jobs": {"workers": 1},
            "dicom": {
                "allowed_sources": [
                    {"ae_title": "STORESCU"},
                    {"ae_title": QR_AE, "query_retrieve": True},
                    {"ae_title": orthanc.ae_title, "host": "127.0.0.1", "query_retrieve": True},
                ]
            },
            "destinations": [
                {"name": "WORKSTATION", "ae_title": "WORKSTATION", "host": "127.0.0.1", "port": workstation_port},
                {"name": "ORTHANC", "ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port},
            ],
        },
    )
    (root / "node").mkdir()
    orthanc.add_modality("node", node.ae, node.port)
    orthanc.start()
    node.start(timeout=60)
    try:
        studies = {}
        for name in ("P001", "normal001"):
            source = shared_series("covid-ct-md", name)
            header = pydicom.dcmread(next(source.glob("*.dcm")), stop_before_pixels=True)
            sent = storescu(node.port, source)
            assert sent.returncode == 0, sent.stderr
            studies[name] = str(header.StudyInstanceUID)
        for name in studies:
            header = pydicom.dcmread(next(shared_series("covid-ct-md", name).glob("*.dcm")), stop_before_pixels=True)
            _job, state, reason = wait_for_finished_job(node.data_dir, header.SeriesInstanceUID, timeout=PIPELINE_SECONDS)
            assert state == "done", f"{name}: {state} {reason}\n{node.log()[-3000:]}"
        yield ProcessedNode(node, orthanc, studies, workstation_port)
    finally:
        node.stop()
        orthanc.stop()


def test_a_study_level_query_finds_both_studies_with_their_results_counted(processed: ProcessedNode) -> None:
    answers = findscu(processed.node.port, "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "ModalitiesInStudy", "NumberOfStudyRelatedSeries")
    by_uid = {str(ds.StudyInstanceUID): ds for ds in answers}
    assert set(by_uid) == set(processed.studies.values())
    for ds in by_uid.values():
        assert {"CT", "SEG", "SR"} <= set(ds.ModalitiesInStudy), ds
        assert int(ds.NumberOfStudyRelatedSeries) >= 3  # CT, SEG, SR (and the secondary captures)


def test_series_level_finds_the_seg_and_sr_of_p001(processed: ProcessedNode) -> None:
    study = processed.studies["P001"]
    answers = findscu(processed.node.port, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}", "Modality=SEG\\SR", "SeriesInstanceUID")
    assert sorted(str(ds.Modality) for ds in answers) == ["SEG", "SR"]


def test_patient_root_image_level_lists_the_results_instances(processed: ProcessedNode) -> None:
    study = processed.studies["normal001"]
    answers = findscu(processed.node.port, "-P", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study}", "SOPClassUID", "SOPInstanceUID")
    classes = [str(ds.SOPClassUID) for ds in answers]
    assert classes.count(SEG) == 1 and classes.count(COMPREHENSIVE_3D_SR) == 1
    assert len(classes) >= 154 + 2


def test_movescu_sends_the_results_to_a_configured_destination(processed: ProcessedNode, tmp_path: Path) -> None:
    study = processed.studies["P001"]
    received = movescu(
        processed.node.port, "WORKSTATION", processed.workstation_port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}", "Modality=SEG\\SR"
    )
    assert received.returncode == 0, received.stderr
    classes = sorted(str(pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID) for path in tmp_path.iterdir())
    assert classes == sorted([SEG, COMPREHENSIVE_3D_SR])


def test_getscu_gets_the_seg(processed: ProcessedNode, tmp_path: Path) -> None:
    study = processed.studies["P001"]
    got = getscu(processed.node.port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={study}", "Modality=SEG")
    assert got.returncode == 0, got.stderr
    (path,) = tmp_path.iterdir()
    seg = pydicom.dcmread(path)
    assert (str(seg.SOPClassUID), str(seg.StudyInstanceUID)) == (SEG, study)
    assert seg.SegmentSequence  # the whole object, frames included
    assert len(seg.PixelData) > 0


def test_orthanc_queries_the_node_as_a_modality_and_retrieves_the_seg_and_sr(processed: ProcessedNode) -> None:
    orthanc, study = processed.orthanc, processed.studies["P001"]
    found = httpx.post(
        f"{orthanc.url}/modalities/node/query",
        json={"Level": "Series", "Query": {"StudyInstanceUID": study, "Modality": "SEG\\SR"}},
        timeout=30,
    )
    found.raise_for_status()
    query_id = found.json()["ID"]
    answers = orthanc.get(f"/queries/{query_id}/answers?expand&simplify")
    assert sorted(answer["Modality"] for answer in answers) == ["SEG", "SR"]
    retrieved = httpx.post(f"{orthanc.url}/queries/{query_id}/retrieve", json={"TargetAet": orthanc.ae_title, "Synchronous": True}, timeout=120)
    retrieved.raise_for_status()
    stored = {orthanc.get(f"/instances/{uid}/simplified-tags")["SOPClassUID"] for uid in orthanc.get("/instances")}
    assert {SEG, COMPREHENSIVE_3D_SR} <= stored
