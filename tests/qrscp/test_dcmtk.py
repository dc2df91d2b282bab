"""The Query/Retrieve SCP as dcmtk's findscu, movescu and getscu see it: a node holding one received CT series
(lung-pet-ct-dx A0002-B40f: 30 uncompressed slices, StudyDate 20070425, PatientID/Name Lung_Dx-A0002).

Results are found as received instances are (tests/qrscp/test_catalogue.py; with real results:
test_processed_slow.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context, build_role
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet

from tests.dcmtk import storescu
from tests.node_process import NodeProcess, free_port, shared_series
from tests.qrscp.dcmtk_qr import QR_AE, find, findscu, getscu, movescu

SERIES = shared_series("lung-pet-ct-dx", "A0002-B40f")
PATIENT = "Lung_Dx-A0002"
HEADER = pydicom.dcmread(next(SERIES.glob("*.dcm")), stop_before_pixels=True)
STUDY_UID, SERIES_UID = str(HEADER.StudyInstanceUID), str(HEADER.SeriesInstanceUID)


class Node:
    def __init__(self, process: NodeProcess, workstation_port: int) -> None:
        self.process = process
        self.port = process.port
        self.workstation_port = workstation_port


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("qr-node")
    workstation_port = free_port()
    process = NodeProcess(
        root,
        settings={
            "dicom": {
                "allowed_sources": [{"ae_title": "STORESCU"}, {"ae_title": QR_AE, "query_retrieve": True}],
                "query_max_matches": 20,
                "max_retrievals": 1,
            },
            "destinations": [
                {"name": "WORKSTATION", "ae_title": "WORKSTATION", "host": "127.0.0.1", "port": workstation_port},
                {"name": "RESEARCH", "ae_title": "RESEARCH", "host": "127.0.0.1", "port": workstation_port, "deidentification": {"enabled": True}},
            ],
        },
    )
    process.start()
    try:
        sent = storescu(process.port, SERIES)
        assert sent.returncode == 0, sent.stderr
        yield Node(process, workstation_port)
    finally:
        process.stop()


def test_study_root_study_level_by_patient_id_returns_the_indexed_attributes(node: Node) -> None:
    (study,) = findscu(node.port, "-S", "QueryRetrieveLevel=STUDY", f"PatientID={PATIENT}", "StudyInstanceUID", "StudyDate", "PatientName",
                       "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "StudyTime")
    assert (study.StudyInstanceUID, study.StudyDate, str(study.PatientName)) == (STUDY_UID, "20070425", PATIENT)
    assert (study.ModalitiesInStudy, int(study.NumberOfStudyRelatedInstances)) == ("CT", 30)
    assert study.RetrieveAETitle == "CLARA" and study.StudyTime == HEADER.StudyTime


@pytest.mark.parametrize(
    ("key", "found"),
    [
        ("PatientName=lung_dx*", 1),  # PN: case-insensitive
        ("PatientName=*A000?", 1),
        ("PatientID=Lung_Dx-A000?", 1),
        ("PatientID=lung_dx*", 0),  # LO: exact case
        ("PatientID=Lung_Dx", 0),  # single value: the whole value
        ("StudyDate=20070101-20071231", 1),
        ("StudyDate=20070425-", 1),
        ("StudyDate=-20070424", 0),
        ("StudyDate=20080101-", 0),
        ("StudyTime=170000-180000", 1),
        ("StudyTime=-173333", 1),  # a time compares on the precision the key gives
        ("StudyTime=180000-", 0),
        ("ModalitiesInStudy=MR\\CT", 1),
        ("ModalitiesInStudy=SEG", 0),
    ],
)
def test_study_level_matching(node: Node, key: str, found: int) -> None:
    assert len(findscu(node.port, "-S", "QueryRetrieveLevel=STUDY", key, "StudyInstanceUID")) == found


def test_patient_root_walks_patient_study_series_image(node: Node) -> None:
    (patient,) = findscu(node.port, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=LUNG*", "PatientID", "NumberOfPatientRelatedInstances")
    assert (patient.PatientID, int(patient.NumberOfPatientRelatedInstances)) == (PATIENT, 30)
    (study,) = findscu(node.port, "-P", "QueryRetrieveLevel=STUDY", f"PatientID={PATIENT}", "StudyInstanceUID", "NumberOfStudyRelatedSeries")
    assert (study.StudyInstanceUID, int(study.NumberOfStudyRelatedSeries)) == (STUDY_UID, 1)
    (series,) = findscu(node.port, "-P", "QueryRetrieveLevel=SERIES", f"PatientID={PATIENT}", f"StudyInstanceUID={STUDY_UID}", "SeriesInstanceUID",
                        "Modality", "NumberOfSeriesRelatedInstances")
    assert (series.SeriesInstanceUID, series.Modality, int(series.NumberOfSeriesRelatedInstances)) == (SERIES_UID, "CT", 30)
    images = findscu(node.port, "-P", "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={STUDY_UID}", f"SeriesInstanceUID={SERIES_UID}", "InstanceNumber=1\\2\\3",
                     "SOPInstanceUID")
    assert sorted(int(image.InstanceNumber) for image in images) == [1, 2, 3]


def test_study_root_series_level_within_a_study(node: Node) -> None:
    (series,) = findscu(node.port, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY_UID}", "Modality=CT", "SeriesNumber", "SeriesInstanceUID")
    assert (series.SeriesInstanceUID, series.SeriesNumber) == (SERIES_UID, HEADER.SeriesNumber)
    assert not findscu(node.port, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY_UID}", "Modality=SEG", "SeriesInstanceUID")


def test_study_root_image_level_by_a_list_of_uids(node: Node) -> None:
    uids = sorted(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in sorted(SERIES.glob("*.dcm"))[:2])
    images = findscu(node.port, "-S", "QueryRetrieveLevel=IMAGE", f"SeriesInstanceUID={SERIES_UID}", "SOPInstanceUID=" + "\\".join(uids))
    assert sorted(str(image.SOPInstanceUID) for image in images) == uids


def test_a_patient_level_query_is_refused_in_study_root(node: Node) -> None:
    result = find(node.port, "-S", "QueryRetrieveLevel=PATIENT", "PatientID")
    assert "Failed: UnableToProcess" in result.output and not result.answers, result.output[-2000:]


def test_more_matches_than_the_limit_are_refused_not_cut(node: Node) -> None:
    result = find(node.port, "-S", "QueryRetrieveLevel=IMAGE", f"SeriesInstanceUID={SERIES_UID}", "SOPInstanceUID")
    assert "Refused: OutOfResources" in result.output and not result.answers, result.output[-2000:]
    assert not result.answers


def test_a_source_not_allowed_to_query_gets_no_query_context(node: Node) -> None:
    result = find(node.port, "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", calling="STORESCU")
    assert result.returncode != 0 and "No Acceptable Presentation Contexts" in result.output
    assert "it is no source with query_retrieve = true" in node.process.log()


def test_movescu_to_the_configured_destination_receives_the_series(node: Node, tmp_path: Path) -> None:
    moved = movescu(node.port, "WORKSTATION", node.workstation_port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY_UID}",
                    f"SeriesInstanceUID={SERIES_UID}")
    assert moved.returncode == 0 and "Final Move Response (Success)" in moved.stderr + moved.stdout, moved.stderr[-2000:]
    received = {str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in tmp_path.iterdir()}
    assert len(received) == 30


def test_movescu_to_an_unknown_destination_is_refused_with_a801(node: Node, tmp_path: Path) -> None:
    moved = movescu(node.port, "NOBODY", free_port(), tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={STUDY_UID}")
    assert "MoveDestinationUnknown" in moved.stderr + moved.stdout, moved.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_movescu_to_a_de_identifying_destination_is_refused_with_a801(node: Node, tmp_path: Path) -> None:
    """What a C-MOVE sends is not de-identified: a destination that de-identifies is none for C-MOVE."""
    moved = movescu(node.port, "RESEARCH", node.workstation_port, tmp_path, "-S", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={STUDY_UID}")
    assert "MoveDestinationUnknown" in moved.stderr + moved.stdout, moved.stderr[-2000:]
    assert not list(tmp_path.iterdir())
    assert "destination RESEARCH de-identifies" in node.process.log()


def test_getscu_gets_the_series_on_its_own_association(node: Node, tmp_path: Path) -> None:
    got = getscu(node.port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={STUDY_UID}", f"SeriesInstanceUID={SERIES_UID}")
    assert got.returncode == 0, got.stderr[-2000:]
    files = sorted(tmp_path.iterdir())
    assert len(files) == 30
    original = {str(pydicom.dcmread(path).SOPInstanceUID): pydicom.dcmread(path).PixelData for path in sorted(SERIES.glob("*.dcm"))[:3]}
    for path in files:
        ds = pydicom.dcmread(path)
        if str(ds.SOPInstanceUID) in original:
            assert ds.PixelData == original[str(ds.SOPInstanceUID)]


class HeldGet:
    """A C-GET by pynetdicom whose first C-STORE sub-operation is not answered until `release()`: the node's
    retrieval stays in progress meanwhile."""

    def __init__(self, port: int, identifier: Dataset) -> None:
        self.first_store, self._release = threading.Event(), threading.Event()
        self.stored: list[str] = []
        self.statuses: list[int] = []
        ae = AE(ae_title=QR_AE)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
        self.assoc = ae.associate("127.0.0.1", port, contexts=[build_context(StudyRootQueryRetrieveInformationModelGet), build_context(CTImageStorage)],
                                  ae_title="CLARA", ext_neg=[build_role(CTImageStorage, scp_role=True)], evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        assert self.assoc.is_established
        self._thread = threading.Thread(target=self._get, args=(identifier,))
        self._thread.start()
        assert self.first_store.wait(30)

    def _on_store(self, event: evt.Event) -> int:
        self.first_store.set()
        self._release.wait(30)
        self.stored.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    def _get(self, identifier: Dataset) -> None:
        for status, _identifier in self.assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet, msg_id=7):
            if "Status" in status:
                self.statuses.append(int(status.Status))

    def cancel(self) -> None:
        self.assoc.send_c_cancel(7, query_model=StudyRootQueryRetrieveInformationModelGet)

    def release(self) -> None:
        self._release.set()
        self._thread.join(30)
        self.assoc.release()


def _series_identifier(level: str = "SERIES") -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    identifier.SeriesInstanceUID = SERIES_UID
    return identifier


def test_a_retrieval_beyond_max_retrievals_is_refused_while_one_runs(node: Node, tmp_path: Path) -> None:
    """max_retrievals = 1: a C-GET held mid-way (its first C-STORE unanswered) keeps the slot; a second is refused 0xA701."""
    held = HeldGet(node.port, _series_identifier())
    try:
        refused = getscu(node.port, tmp_path, "-S", "QueryRetrieveLevel=SERIES", f"SeriesInstanceUID={SERIES_UID}")
        assert "Refused: OutOfResourcesNumberOfMatches" in refused.stdout + refused.stderr and not list(tmp_path.iterdir()), refused.stderr[-2000:]
    finally:
        held.release()
    assert held.statuses[-1] == 0x0000 and len(held.stored) == 30


def test_c_cancel_stops_a_c_get_before_its_next_sub_operation(node: Node) -> None:
    """The C-CANCEL arrives while the first sub-operation is held: deterministic, unlike a C-FIND's (the node has sent
    every match before findscu's cancel arrives; the C-FIND handler checks the same flag before each match)."""
    held = HeldGet(node.port, _series_identifier())
    held.cancel()
    held.release()
    assert held.statuses[-1] == 0xFE00
    assert 1 <= len(held.stored) < 30
