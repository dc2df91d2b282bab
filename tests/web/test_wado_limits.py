"""WADO-RS answers are bounded: a frame list's duplicates are folded, a list longer than
`http.max_frames_per_request` gets 400, and an answer larger than `http.max_response_mb` gets 413 before it is sent.

The campaign's request, frame 1 asked 3,000 times in a 6 KB URL, had a 1,500 MiB answer."""

from __future__ import annotations

import pydicom

from dicom_node.net.multipart import media_type_parameters
from tests.web.conftest import Site, p001_files

ANY_SYNTAX = {"Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*'}


def uids(site: Site) -> tuple[str, str, str]:
    ds = pydicom.dcmread(p001_files()[-1], stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def parts(response) -> int:  # type: ignore[no-untyped-def]
    boundary = media_type_parameters(response.headers["content-type"])[1]["boundary"]
    return response.content.count(f"--{boundary}\r\n".encode())


def test_a_frame_asked_3000_times_is_sent_once(small_site: Site) -> None:
    study, series, sop = uids(small_site)
    with small_site.client() as http:
        once = http.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1", headers=ANY_SYNTAX)
        repeated = http.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{','.join(['1'] * 3000)}", headers=ANY_SYNTAX)
    assert once.status_code == repeated.status_code == 200
    assert parts(repeated) == 1
    assert len(repeated.content) == len(once.content) < 1_000_000  # was 3,000 copies: 1,500 MiB for this CT


def test_more_frames_than_the_setting_get_400_naming_it(small_site: Site) -> None:
    study, series, sop = uids(small_site)
    with small_site.client(http={"max_frames_per_request": 1}) as http:
        response = http.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1,2", headers=ANY_SYNTAX)
    assert response.status_code == 400
    assert "http.max_frames_per_request (1)" in response.json()["detail"]


def test_an_answer_over_the_size_limit_gets_413_naming_it(small_site: Site) -> None:
    study, series, sop = uids(small_site)
    dicom = {"Accept": 'multipart/related; type="application/dicom"'}
    with small_site.client(http={"max_response_mb": 1}) as http:
        series_answer = http.get(f"/dicomweb/studies/{study}/series/{series}", headers=dicom)  # 25 slices, about 12 MiB
        instance_answer = http.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}", headers=dicom)
    assert series_answer.status_code == 413
    assert "http.max_response_mb (1 MiB)" in series_answer.json()["detail"]
    assert instance_answer.status_code == 200 and parts(instance_answer) == 1
