"""DICOMweb against the real node with a real client (dicomweb-client): search, retrieve, store.

The node is the session's `processed_p001` (P001 sent with storescu, its job
done), so its SEG and SR are served beside the CT. STOW-RS of P001 goes to a
node of its own, which must end with the same job and results as storescu's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid
from requests.exceptions import HTTPError

from dicom_node.store.files import encode_file_header, instance_relpath
from tests.node.index import query, wait_for_finished_job
from tests.node_process import free_port, wait_for_port
from tests.processed_node import ProcessedSeries

DICOM_JSON = {"Accept": "application/dicom+json"}


def client(processed: ProcessedSeries) -> DICOMwebClient:
    return DICOMwebClient(f"{processed.http_url}/dicomweb")


def values(dataset: dict, keyword_tag: str) -> list:
    return dataset.get(keyword_tag, {}).get("Value", [])


def stored_path(processed: ProcessedSeries, series_uid: str, sop_uid: str) -> Path:
    return processed.node.data_dir / instance_relpath(processed.study_instance_uid, series_uid, sop_uid)


def result_uids(processed: ProcessedSeries) -> dict:
    document = json.loads((processed.node.data_dir / "results" / str(processed.job_id) / "result.json").read_text())
    return document["dicom"]


def test_qido_finds_the_study_its_series_and_the_nodes_results(processed_p001: ProcessedSeries) -> None:
    dicomweb = client(processed_p001)
    header = pydicom.dcmread(next(processed_p001.source.glob("*.dcm")), stop_before_pixels=True)
    (study,) = dicomweb.search_for_studies(search_filters={"StudyInstanceUID": processed_p001.study_instance_uid})
    assert values(study, "00080061") == ["CT", "OT", "SEG", "SR"]  # ModalitiesInStudy: the CT and the node's results
    results = processed_p001.node.cli("jobs", "show", str(processed_p001.job_id), "--json")
    key_images = json.loads(results.stdout)["result"]["secondary_capture"]
    in_study = dicomweb.search_for_instances(processed_p001.study_instance_uid)
    # The CT, SEG, SR, summary page and key images at least (other tests of the session may add to this study).
    assert len(in_study) >= 148 + 3 + len(key_images)
    summary_uid = result_uids(processed_p001)["summary"]["sop_instance_uid"]
    assert summary_uid in {values(instance, "00080018")[0] for instance in in_study}
    assert values(study, "00201206") == [len(dicomweb.search_for_series(processed_p001.study_instance_uid))]
    assert values(study, "00201208") == [len(in_study)]
    assert values(study, "00100020") == [header.PatientID] and values(study, "00080020") == [header.StudyDate]

    # Standard keys: single value, wildcard, date range; a miss is an empty list (person names: the STOW test).
    assert len(dicomweb.search_for_studies(search_filters={"PatientID": header.PatientID})) == 1
    assert len(dicomweb.search_for_studies(search_filters={"PatientID": header.PatientID[:3] + "*"})) == 1
    # Other tests of the session send studies of that day too: the range finds P001's study and only that day's.
    on_the_day = dicomweb.search_for_studies(search_filters={"StudyDate": f"{header.StudyDate}-{header.StudyDate}"})
    assert processed_p001.study_instance_uid in [values(s, "0020000D")[0] for s in on_the_day]
    assert {values(s, "00080020")[0] for s in on_the_day} == {header.StudyDate}
    assert dicomweb.search_for_studies(search_filters={"StudyDate": "-19991231"}) == []

    series = {values(s, "00080060")[0]: s for s in dicomweb.search_for_series(processed_p001.study_instance_uid)}
    assert set(series) == {"CT", "OT", "SEG", "SR"}  # OT: the key images and the summary page
    assert values(series["CT"], "00201209") == [148] and values(series["SEG"], "00201209") == [1]
    uids = result_uids(processed_p001)
    assert values(series["SEG"], "0020000E") == [uids["seg"]["series_instance_uid"]]
    (seg_series,) = dicomweb.search_for_series(search_filters={"Modality": "SEG", "StudyInstanceUID": processed_p001.study_instance_uid})
    assert values(seg_series, "0020000E") == [uids["seg"]["series_instance_uid"]]

    # Instances: limit/offset page through them in instance number order; includefield adds attributes.
    page = dicomweb.search_for_instances(
        processed_p001.study_instance_uid, processed_p001.series_instance_uid, limit=5, offset=10, fields=["ImagePositionPatient"]
    )
    assert [values(i, "00200013")[0] for i in page] == list(range(11, 16))
    assert all(len(values(i, "00200032")) == 3 for i in page)
    assert len(dicomweb.search_for_instances(processed_p001.study_instance_uid)) == len(in_study)


def test_qido_answers_400_to_an_unknown_key(processed_p001: ProcessedSeries) -> None:
    response = httpx.get(f"{processed_p001.http_url}/dicomweb/studies", params={"NoSuchKeyword": "1"}, headers=DICOM_JSON)
    assert response.status_code == 400 and "NoSuchKeyword" in response.json()["detail"]


def test_wado_returns_the_stored_bytes_unchanged(processed_p001: ProcessedSeries) -> None:
    dicomweb = client(processed_p001)
    first = dicomweb.search_for_instances(processed_p001.study_instance_uid, processed_p001.series_instance_uid, limit=1)[0]
    sop = values(first, "00080018")[0]
    base = f"{processed_p001.http_url}/dicomweb/studies/{processed_p001.study_instance_uid}"

    def raw_parts(url: str) -> list[bytes]:
        """The parts of a WADO-RS answer as bytes, split by dicomweb-client's multipart decoder, untouched by a DICOM parser."""
        response = requests.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'}, timeout=60)
        response.raise_for_status()
        return list(dicomweb._decode_multipart_message(response, stream=False))

    (ct_bytes,) = raw_parts(f"{base}/series/{processed_p001.series_instance_uid}/instances/{sop}")
    stored = stored_path(processed_p001, processed_p001.series_instance_uid, sop)
    assert ct_bytes == stored.read_bytes()
    uids = result_uids(processed_p001)
    (seg_bytes,) = raw_parts(f"{base}/series/{uids['seg']['series_instance_uid']}/instances/{uids['seg']['sop_instance_uid']}")
    assert seg_bytes == (processed_p001.node.data_dir / "results" / str(processed_p001.job_id) / "seg.dcm").read_bytes()

    series = dicomweb.retrieve_series(processed_p001.study_instance_uid, processed_p001.series_instance_uid)
    assert len(series) == 148 and series[0].file_meta.TransferSyntaxUID == pydicom.dcmread(stored).file_meta.TransferSyntaxUID


def test_wado_metadata_frames_and_rendered(processed_p001: ProcessedSeries) -> None:
    dicomweb = client(processed_p001)
    study, series = processed_p001.study_instance_uid, processed_p001.series_instance_uid
    metadata = dicomweb.retrieve_series_metadata(study, series)
    assert len(metadata) == 148
    assert all("BulkDataURI" in m["7FE00010"] and "InlineBinary" not in m["7FE00010"] for m in metadata)
    sop = values(metadata[0], "00080018")[0]
    stored = pydicom.dcmread(stored_path(processed_p001, series, sop))

    # Bulk data URI of the pixel data, and the frame as stored (JPEG lossless codestream) when the client takes any syntax.
    # (dicomweb-client sends `Host: 127.0.0.1` without the port, so the node's absolute URIs lack it: put it back.)
    uri = metadata[0]["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulk/7FE00010")
    any_syntax = (("application/octet-stream", "*"),)
    (codestream,) = dicomweb.retrieve_bulkdata(uri.replace("http://127.0.0.1/", f"{processed_p001.http_url}/"), media_types=any_syntax)
    assert codestream == next(generate_frames(stored.PixelData, number_of_frames=1))
    (as_stored,) = dicomweb.retrieve_instance_frames(study, series, sop, [1], media_types=any_syntax)
    assert as_stored == codestream
    # Decoded to Explicit VR Little Endian (the default) when the client asks for that.
    (decoded,) = dicomweb.retrieve_instance_frames(study, series, sop, [1])
    assert np.array_equal(np.frombuffer(decoded, "<i2" if stored.PixelRepresentation else "<u2").reshape(stored.Rows, stored.Columns), stored.pixel_array)

    png = dicomweb.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    assert png.startswith(b"\x89PNG")

    uids = result_uids(processed_p001)
    seg = dicomweb.retrieve_instance_metadata(study, uids["seg"]["series_instance_uid"], uids["seg"]["sop_instance_uid"])
    labels = [values(segment, "00620005")[0] for segment in values(seg, "00620002")]
    assert labels == ["Right lung", "Left lung", "Lung opacity"]
    with pytest.raises(HTTPError) as missing:
        dicomweb.retrieve_instance_frames(study, series, sop, [2])
    assert missing.value.response.status_code == 400


def test_stow_of_p001_makes_the_same_job_and_results_as_storescu(processed_p001: ProcessedSeries, node_factory) -> None:
    assert processed_p001.state == "done", processed_p001.reason
    http_port = free_port()
    node = node_factory(settings={"jobs": {"workers": 1}, "http": {"port": http_port}}).start(timeout=60)
    wait_for_port(http_port, 30, node.proc)
    datasets = [pydicom.dcmread(path) for path in sorted(processed_p001.source.glob("*.dcm"))]
    response = DICOMwebClient(f"http://127.0.0.1:{http_port}/dicomweb").store_instances(datasets)
    assert len(response.ReferencedSOPSequence) == 148 and "FailedSOPSequence" not in response
    # Acknowledged means durable and indexed: every instance's file and row exist when the answer arrives.
    assert query(node.data_dir, "SELECT count(*) FROM instance")[0][0] == 148
    ((calling, state, instances),) = query(node.data_dir, "SELECT calling_ae, state, instances_received FROM association")
    assert (calling, state, instances) == ("STOW-RS", "released", 148)

    job_id, state, reason = wait_for_finished_job(node.data_dir, processed_p001.series_instance_uid, timeout=300)
    assert (state, reason) == ("done", "")
    assert query(node.data_dir, "SELECT count(*) FROM job")[0][0] == 1
    stow_result = json.loads((node.data_dir / "results" / str(job_id) / "result.json").read_text())
    scu_result = json.loads((processed_p001.node.data_dir / "results" / str(processed_p001.job_id) / "result.json").read_text())
    for key in ("source", "classification", "measurements", "dicom"):
        assert stow_result[key] == scu_result[key], key


def part10(dataset: pydicom.Dataset) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(buffer, dataset)
    return encode_file_header(dataset.file_meta) + buffer.getvalue()


def multipart(boundary: str, *parts: tuple[str, bytes]) -> bytes:
    body = b"".join(f"--{boundary}\r\nContent-Type: {kind}\r\n\r\n".encode() + payload + b"\r\n" for kind, payload in parts)
    return body + f"--{boundary}--\r\n".encode()


def test_stow_refuses_bad_bodies_with_a_reason_and_stores_nothing(processed_p001: ProcessedSeries) -> None:
    url = f"{processed_p001.http_url}/dicomweb/studies"
    good = pydicom.dcmread(sorted(processed_p001.source.glob("*.dcm"))[0])
    good.decompress()  # Explicit VR Little Endian: part10() writes the data set in that syntax
    good.StudyInstanceUID, good.SeriesInstanceUID, good.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    good.PatientName, good.PatientID = "Smith^Anna", "DW-STOW-1"
    good.file_meta.MediaStorageSOPInstanceUID = good.SOPInstanceUID
    no_series = copy.deepcopy(good)
    no_series.SOPInstanceUID = no_series.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del no_series.SeriesInstanceUID
    related = 'multipart/related; type="application/dicom"; boundary=b0'

    def post(body: bytes, content_type: str = related) -> httpx.Response:
        return httpx.post(url, content=body, headers={"Content-Type": content_type, **DICOM_JSON}, timeout=60)

    refusals = {
        "415 json": (post(b"{}", "application/json"), 415, "multipart/related"),
        "no boundary": (post(multipart("b0", ("application/dicom", part10(good))), 'multipart/related; type="application/dicom"'), 400, "boundary"),
        "other boundary": (post(multipart("zz", ("application/dicom", part10(good)))), 400, "boundary"),
        "unterminated": (post(multipart("b0", ("application/dicom", part10(good)))[:-8]), 400, "closing boundary"),
        "text part": (post(multipart("b0", ("application/dicom", part10(good)), ("text/plain", b"hello"))), 400, "part 2 is text/plain"),
        "not DICOM": (post(multipart("b0", ("application/dicom", part10(good)), ("application/dicom", b"\0" * 200 + b"hello"))), 400, "part 2 is not a DICOM PS3.10 file"),
    }
    for name, (response, status, reason) in refusals.items():
        assert response.status_code == status, (name, response.text)
        assert reason in response.json()["detail"], (name, response.text)
    stored = httpx.get(f"{processed_p001.http_url}/dicomweb/instances", params={"SOPInstanceUID": good.SOPInstanceUID}, headers=DICOM_JSON)
    assert stored.status_code == 200 and stored.json() == []  # nothing of a refused body was stored

    # A data set the receive path refuses: 409 with the failure reason (the C-STORE status) and why, in words.
    refused = post(multipart("b0", ("application/dicom", part10(no_series))))
    assert refused.status_code == 409
    (failure,) = values(refused.json(), "00081198")
    assert values(failure, "00081197") == [0xC211] and values(failure, "00081155") == [no_series.SOPInstanceUID]
    assert "UID missing" in values(failure, "00000902")[0]
    # One good, one refused: 202, the good one stored and retrievable.
    mixed = post(multipart("b0", ("application/dicom", part10(good)), ("application/dicom", part10(no_series))))
    assert mixed.status_code == 202
    assert [values(i, "00081155")[0] for i in values(mixed.json(), "00081199")] == [good.SOPInstanceUID]
    found = httpx.get(f"{processed_p001.http_url}/dicomweb/instances", params={"SOPInstanceUID": good.SOPInstanceUID}, headers=DICOM_JSON)
    assert [values(i, "00080018")[0] for i in found.json()] == [good.SOPInstanceUID]

    # Person names: fuzzy matching finds a name by the start of any component, ignoring case; plain matching does not.
    dicomweb = client(processed_p001)
    by_name = {
        "fuzzy 'smi'": dicomweb.search_for_studies(fuzzymatching=True, search_filters={"PatientName": "smi"}),
        "fuzzy 'ann'": dicomweb.search_for_studies(fuzzymatching=True, search_filters={"PatientName": "ann"}),
        "wildcard 'SMITH*'": dicomweb.search_for_studies(search_filters={"PatientName": "SMITH*"}),
    }
    for name, studies in by_name.items():
        assert [values(s, "0020000D")[0] for s in studies] == [good.StudyInstanceUID], name
    assert dicomweb.search_for_studies(search_filters={"PatientName": "smi"}) == []
