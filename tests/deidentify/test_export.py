"""A real series through the real node to a de-identified Orthanc: nothing of the identity arrives, the references
still resolve there, a second export maps to the same pseudonyms, the dates move by one per-patient offset, and
dciodvfy finds no error in a de-identified object that the original did not have.

The default test sends A0002-B40f (30 slices); the slow one P001 (148), with the same checks.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_node.output.series import SR_DESCRIPTION
from tests.dcmtk import storescu
from tests.export.conftest import export_rows
from tests.export.peers import Orthanc, wait_for
from tests.node.index import query
from tests.node_process import REPO, NodeProcess, free_port, shared_series, wait_for_port
from tests.output.dicom_validation import dciodvfy_errors
from tests.web.ohif import COVID19_SEG, open_seg_over_ct

RESEARCH = "RESEARCH"
SEG, SR, SC = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.7"
IDENTITY_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName", "InstitutionAddress",
    "ReferringPhysicianName", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "StationName",
)  # fmt: skip


def _settings(orthanc: Orthanc) -> dict:
    return _settings_for({"name": RESEARCH, "ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port,
                          "include_source": True, "deidentification": {"enabled": True}})  # fmt: skip


def _settings_for(destination: dict) -> dict:
    return {
        "jobs": {"workers": 1, "settle_seconds": 1.0, "poll_seconds": 0.2},
        "export": {"retry_initial_seconds": 0.2, "retry_max_seconds": 1.0, "poll_seconds": 0.1},
        "destinations": [destination],
        "pipelines": {"covid19_ct": {"destinations": [destination["name"]]}},
    }


def _uids(ds: Dataset) -> set[str]:
    """The instance-identifying UIDs: not SOP classes or transfer syntaxes (a vendor's SOP class names no one)."""
    found = set()
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value and "SOPClass" not in elem.keyword and elem.keyword != "TransferSyntaxUID":
            found.update(str(v) for v in (elem.value if elem.VM > 1 else [elem.value]))
    return found


def _identity_values(source: Path) -> set[str]:
    """Every identity value of the series as received, and every UID it carries except the standard's own."""
    values: set[str] = set()
    for path in source.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in IDENTITY_KEYWORDS:
            value = str(ds.get(keyword, "") or "").strip()
            if len(value) >= 3:
                values.add(value)
        values |= {uid for uid in _uids(ds) if not uid.startswith("1.2.840.10008.")}
    return values


def _all_sent(node: NodeProcess) -> bool:
    rows = export_rows(node.data_dir)
    return bool(rows) and all(row["state"] in ("sent", "failed") for row in rows) and any(r["state"] == "sent" for r in rows)


def export_deidentified(series: tuple[str, str], node: NodeProcess, orthanc: Orthanc, timeout: float) -> dict[str, bytes]:
    """Send the series to the node, wait until every export is answered, return Orthanc's files by SOP Instance UID."""
    source = shared_series(*series)
    node.start()
    assert storescu(node.port, source).returncode == 0
    wait_for(lambda: _all_sent(node), timeout, "the de-identified exports", interval=0.5)
    failed = [row for row in export_rows(node.data_dir) if row["state"] != "sent"]
    assert not failed, failed
    files = {}
    for instance in orthanc.get("/instances"):
        data = orthanc_file(orthanc, instance)
        files[str(pydicom.dcmread(_bytes_io(data), stop_before_pixels=True).SOPInstanceUID)] = data
    return files


def _bytes_io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def orthanc_file(orthanc: Orthanc, instance_id: str) -> bytes:
    response = httpx.get(f"{orthanc.url}/instances/{instance_id}/file", timeout=30)
    response.raise_for_status()
    return response.content


def check_deidentified(series: tuple[str, str], node: NodeProcess, orthanc: Orthanc, files: dict[str, bytes]) -> None:
    source = shared_series(*series)
    originals = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in source.glob("*.dcm")}
    results = [Path(node.data_dir) / row["path"] for row in export_rows(node.data_dir) if row["sop_instance_uid"] not in originals]
    identity = _identity_values(source) | {uid for path in results for uid in _uids(pydicom.dcmread(path, stop_before_pixels=True))}
    identity = {value for value in identity if not value.startswith("1.2.840.10008.")}
    datasets = {uid: pydicom.dcmread(_bytes_io(data)) for uid, data in files.items()}
    modalities = sorted(ds.Modality for ds in datasets.values())
    captures = [ds for ds in datasets.values() if ds.SOPClassUID.startswith(SC)]
    assert modalities.count("CT") == len(originals) and {"SEG", "SR"} <= set(modalities), modalities
    assert len(captures) >= 2, "the summary page and the key images"

    # No original identity value anywhere in any exported file (byte search). Every value is printable ASCII, so
    # an occurrence lies within one run of printable bytes: searching those runs is the same search, much faster.
    first_original = _printable(next(iter(originals.values())).read_bytes())
    found_in_an_original = [value for value in identity if value.encode() in first_original]
    assert len(found_in_an_original) >= 4, found_in_an_original  # the search finds the identity where it is
    for uid, data in files.items():
        printable = _printable(data)
        leaked = [value for value in identity if value.encode() in printable]
        assert not leaked, f"{uid}: {leaked}"
    # Markers.
    for ds in datasets.values():
        assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113100" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        if ds.SOPClassUID.startswith(SC):  # rendered without identifying text: nothing to hold back
            assert ds.BurnedInAnnotation == "NO"
    stored = set(datasets)
    # The SEG overlays the CT: same frame of reference, and every referenced instance is in Orthanc.
    ct = [ds for ds in datasets.values() if ds.Modality == "CT"]
    (seg,) = [ds for ds in datasets.values() if ds.Modality == "SEG"]
    assert seg.FrameOfReferenceUID == ct[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == ct[0].StudyInstanceUID and seg.PatientID == ct[0].PatientID
    for item in seg.ReferencedSeriesSequence:
        assert item.SeriesInstanceUID == ct[0].SeriesInstanceUID
        assert {ref.ReferencedSOPInstanceUID for ref in item.ReferencedInstanceSequence} <= stored
    sources = {ref.ReferencedSOPInstanceUID for frame in seg.PerFrameFunctionalGroupsSequence for d in frame.DerivationImageSequence for ref in d.SourceImageSequence}
    assert sources and sources <= stored
    # The SR's references resolve too (its evidence and its image references).
    (sr,) = [ds for ds in datasets.values() if ds.Modality == "SR"]
    referenced = {elem.value for elem in sr.iterall() if elem.keyword == "ReferencedSOPInstanceUID"}
    assert referenced and referenced <= stored, referenced - stored
    # Dates: every date is the original moved back by one offset, the one the node keeps for the patient.
    reidentified = {row["pseudonym"]: row["original"] for row in _mappings(node)}
    original = pydicom.dcmread(next(iter(originals.values())), stop_before_pixels=True)
    shift = _date(original.StudyDate) - _date(ct[0].StudyDate)
    assert shift.days >= 1
    assert {ds.StudyDate for ds in datasets.values()} == {ct[0].StudyDate}
    for ds in ct:
        before = pydicom.dcmread(originals[reidentified[ds.SOPInstanceUID]], stop_before_pixels=True)
        assert _date(ds.SeriesDate) == _date(before.SeriesDate) - shift and ds.SeriesTime == before.SeriesTime
        assert _date(ds.ContentDate) == _date(before.ContentDate) - shift
    found = node.cli("pseudonyms", "reidentify", str(ct[0].PatientID), "--json").stdout
    assert str(original.PatientID) in found and f'"{shift.days}"' in found
    assert {"original": str(original.SeriesInstanceUID), "pseudonym": str(ct[0].SeriesInstanceUID), "kind": "uid"} in _mappings(node)
    # dciodvfy: no error in a de-identified object that its original did not have.
    by_modality = {ds.Modality: uid for uid, ds in datasets.items()}
    originals_by_uid = {**{str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in results}, **originals}
    for modality, uid in by_modality.items():
        exported = node.tmp / f"exported-{modality}.dcm"
        exported.write_bytes(files[uid])
        before = {_message(line) for line in dciodvfy_errors(originals_by_uid[reidentified[uid]])}
        new = [line for line in dciodvfy_errors(exported) if _message(line) not in before]
        assert not new, (modality, new)


def _printable(data: bytes) -> bytes:
    return b"\n".join(re.findall(rb"[\x20-\x7e]{3,}", data))


def _mappings(node: NodeProcess) -> list[dict[str, str]]:
    return [dict(kind=k, original=o, pseudonym=p) for k, o, p in query(node.data_dir, "SELECT kind, original, pseudonym FROM pseudonym")]


def _message(line: str) -> str:
    """An error line without the values that differ between an original and its de-identified copy."""
    return re.sub(r"<[^>]*>|\d+(\.\d+)+", "", line)


def _date(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def _second_export_maps_the_same(node: NodeProcess, orthanc: Orthanc, files: dict[str, bytes]) -> None:
    """Sending everything again (exports retry) stores nothing new: the same pseudonyms, byte for byte the same objects."""
    rows = export_rows(node.data_dir)
    count = len(orthanc.get("/instances"))
    again = [row["id"] for row in rows if row["sop_class_uid"] in (SEG, SR)] + [rows[0]["id"]]  # and one CT slice
    for export_id in again:
        node.cli("exports", "retry", str(export_id))
    wait_for(lambda: all(r["state"] == "sent" for r in export_rows(node.data_dir)), 60, "the second export", interval=0.3)
    assert len(orthanc.get("/instances")) == count
    for instance in orthanc.get("/instances"):
        data = orthanc_file(orthanc, instance)
        assert files[str(pydicom.dcmread(_bytes_io(data), stop_before_pixels=True).SOPInstanceUID)] == data


def _run(series: tuple[str, str], orthanc_factory: Callable[..., Orthanc], node_factory: Callable[..., NodeProcess], timeout: float) -> None:
    orthanc = orthanc_factory()
    node = node_factory(settings=_settings(orthanc))
    files = export_deidentified(series, node, orthanc, timeout)
    check_deidentified(series, node, orthanc, files)
    _second_export_maps_the_same(node, orthanc, files)


@pytest.mark.slow  # 17 s: a real series through the pipeline and Orthanc; the profile's rules are tested in-process
def test_a0002_and_its_results_reach_a_deidentified_orthanc(orthanc_factory, node_factory) -> None:  # type: ignore[no-untyped-def]
    _run(("lung-pet-ct-dx", "A0002-B40f"), orthanc_factory, node_factory, timeout=120)


@pytest.mark.slow
def test_p001_and_its_results_reach_a_deidentified_orthanc(orthanc_factory, node_factory) -> None:  # type: ignore[no-untyped-def]
    _run(("covid-ct-md", "P001"), orthanc_factory, node_factory, timeout=300)


@pytest.mark.slow
def test_ohif_overlays_the_deidentified_seg_on_the_deidentified_ct(browser, node_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The research archive is a second node (no workers: it only stores and serves); its OHIF opens the
    de-identified study and draws the de-identified SEG over the de-identified CT."""
    http_port = free_port()
    archive = node_factory(ae="ARCHIVE", settings={"jobs": {"workers": 0}, "http": {"port": http_port, "ohif_dir": str(REPO / ".cache" / "ohif")}})
    archive.start()
    wait_for_port(http_port, 30, archive.proc)
    research = {"name": RESEARCH, "ae_title": "ARCHIVE", "host": "127.0.0.1", "port": archive.port, "include_source": True,
                "deidentification": {"enabled": True}}  # fmt: skip
    node = node_factory(settings={**_settings_for(research)})
    source = shared_series("lung-pet-ct-dx", "A0002-B40f")
    node.start()
    assert storescu(node.port, source).returncode == 0
    wait_for(lambda: _all_sent(node), 300, "the de-identified exports", interval=0.5)
    assert {row["state"] for row in export_rows(node.data_dir)} == {"sent"}
    ((series_id, study_uid, patient_id),) = query(
        archive.data_dir,
        "SELECT series.id, study.study_instance_uid, patient.patient_id FROM series JOIN study ON study.id = series.study_fk "
        "JOIN patient ON patient.id = study.patient_fk WHERE series.modality = 'CT'",
    )
    original = pydicom.dcmread(next(source.glob("*.dcm")), stop_before_pixels=True)
    assert study_uid != original.StudyInstanceUID and patient_id != original.PatientID and patient_id.startswith("DN")
    shown = open_seg_over_ct(
        browser, f"http://127.0.0.1:{http_port}", series_id, study_uid, len(list(source.glob("*.dcm"))), tmp_path, (COVID19_SEG,),
        (SR_DESCRIPTION,),
    )
    counts = shown[COVID19_SEG.description]
    assert counts["Right lung"] > 200 and counts["Left lung"] > 200, counts
