"""The node's Q/R SCU against a pynetdicom Q/R SCP that answers as the standard says: C-FIND walks study, series and
image level; an unknown move destination is 0xA801, explained with the fix; a PACS that is not there is transient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelMove

from dicom_node.config import Destination, RetrieveSettings
from dicom_node.net.retrieve import QueryRetrieveScu, RetrieveRefused
from dicom_node.store.inference_requests import StudyQuery
from dicom_node.net.scu import PeerUnavailable
from tests.node_process import free_port

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.1.1"
INSTANCES = [f"{SERIES}.{n}" for n in range(1, 4)]


def _find(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    query = event.identifier
    level = query.QueryRetrieveLevel
    if level == "STUDY" and query.PatientID not in ("", "PAT1"):
        yield 0x0000, None
        return
    rows = {"STUDY": [{"StudyInstanceUID": STUDY}], "SERIES": [{"SeriesInstanceUID": SERIES, "Modality": "CT"}, {"SeriesInstanceUID": SERIES + "9", "Modality": "SR"}]}
    rows["IMAGE"] = [{"SOPInstanceUID": uid, "SOPClassUID": CTImageStorage} for uid in INSTANCES]
    yield from pending_answers(level, STUDY, rows[level])


def pending_answers(level: str, study_uid: str, rows: list[dict[str, str]]) -> Iterator[tuple[int, Dataset]]:
    """A C-FIND SCP's pending answers at `level` of one study, one per row of attribute keywords and values."""
    for row in rows:
        answer = Dataset()
        answer.QueryRetrieveLevel = level
        answer.StudyInstanceUID = study_uid
        for keyword, value in row.items():
            setattr(answer, keyword, value)
        yield 0xFF00, answer


def _move(event: evt.Event) -> Iterator[tuple[str | None, int | None]]:
    yield None, None  # the move destination is not known: pynetdicom answers 0xA801


@pytest.fixture
def qr_scp() -> Iterator[int]:
    ae = AE(ae_title="QRSCP")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, _find), (evt.EVT_C_MOVE, _move)])
    yield port
    server.shutdown()


def _scu(port: int) -> QueryRetrieveScu:
    source = Destination(name="QR", ae_title="QRSCP", host="127.0.0.1", port=port, retrieve_method="C-MOVE")
    return QueryRetrieveScu(source, RetrieveSettings(connection_timeout=2.0, acse_timeout=5.0, dimse_timeout=5.0), "CLARA")


def test_find_walks_the_levels_and_keeps_the_modalities_asked_for(qr_scp: int) -> None:
    found = _scu(qr_scp).find(StudyQuery(patient_id="PAT1", study_date_from="20200101"), ["CT"])
    assert [(s.study_instance_uid, s.series_instance_uid, s.modality) for s in found] == [(STUDY, SERIES, "CT")]
    assert [i.sop_instance_uid for i in found[0].instances] == INSTANCES and found[0].sop_class_uids == [CTImageStorage]
    assert _scu(qr_scp).find(StudyQuery(patient_id="OTHER"), ["CT"]) == []


def test_unknown_move_destination_is_explained(qr_scp: int) -> None:
    scu = _scu(qr_scp)
    series = scu.find(StudyQuery(study_instance_uid=STUDY), ["CT"])[0]
    with pytest.raises(RetrieveRefused) as refused:
        scu.move(series, None, "CLARA", 7)
    assert refused.value.status == 0xA801
    assert "0xA801 (move destination unknown): the PACS does not know this node's AE title CLARA: add it there" in str(refused.value)


def test_a_pacs_that_is_not_there_is_worth_retrying() -> None:
    with pytest.raises(PeerUnavailable, match="cannot connect"):
        _scu(free_port()).find(StudyQuery(study_instance_uid=STUDY), ["CT"])


def test_a_query_names_the_keys_it_asks_for() -> None:
    """What a 'found nothing' error shows the operator, to compare with the PACS."""
    assert str(StudyQuery(study_instance_uid="1.2", series_instance_uid="1.2.3")) == "StudyInstanceUID=1.2, SeriesInstanceUID=1.2.3"
    assert str(StudyQuery(patient_id="P1", study_date_from="20200101")) == "StudyDate=20200101-, PatientID=P1"
