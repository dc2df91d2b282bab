"""C-FIND, C-MOVE and C-GET as a service user (Study Root): how the node finds and fetches a study in a PACS.

pynetdicom is the SCU. C-FIND walks study -> series -> image level, so the
node knows every instance to expect (and which of them it already holds)
before anything is moved. C-MOVE asks the PACS to send to the node's own
Storage SCP: the instances then take the ordinary durable receive path, and
the SCP records the Move Originator AE and Message ID of the association that
brought them (`net/scp.py`). C-GET receives them over this association
instead, with SCP/SCU role selection for the storage classes the query found,
and hands each to the caller's store function (the same receive path).

A peer that cannot be reached raises `PeerUnavailable` (worth retrying); a
failure status raises `RetrieveRefused` with the status explained for people
(`explain_status`), because "0xA801" alone tells an operator nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import build_context, build_role
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicom_node.config import Config, Destination, RetrieveSettings
from dicom_node.net.address import DicomAddress, parse_address
from dicom_node.net.contexts import TRANSFER_SYNTAXES
from dicom_node.net.scu import PeerUnavailable, associate, tls_args
from dicom_node.store.inference_requests import StudyQuery

PENDING = (0xFF00, 0xFF01)
# C-GET proposes, per storage class found, the syntaxes PACS store CT in; each its own context, so the PACS sends
# an instance as stored when it can instead of transcoding it to the first syntax of a shared context.
GET_SYNTAXES_PER_CLASS = 6


class RetrieveRefused(Exception):
    """The PACS answered a C-FIND/C-MOVE/C-GET with a failure status (or refused the association for good)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def study_identifier(query: StudyQuery) -> Dataset:
    """The C-FIND identifier at STUDY level for `query`."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = query.study_instance_uid
    ds.AccessionNumber = query.accession_number
    ds.PatientID = query.patient_id
    ds.StudyDate = query.study_dates
    return ds


@dataclass(frozen=True)
class RemoteInstance:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class RemoteSeries:
    """A series as the PACS described it, with every instance it holds."""

    study_instance_uid: str
    series_instance_uid: str
    modality: str
    instances: tuple[RemoteInstance, ...]

    @property
    def sop_class_uids(self) -> list[str]:
        return sorted({instance.sop_class_uid for instance in self.instances})


@dataclass(frozen=True)
class RetrieveResult:
    """The PACS's final answer to a C-MOVE/C-GET: its status and sub-operation counts."""

    status: int
    completed: int
    failed: int
    warning: int
    comment: str = ""


def explain_status(status: int | None, operation: str, our_ae: str, comment: str = "") -> str:
    """A retrieve status in words, with what to do about it (PS3.4 C.4.2.1.5, C.4.3.1.4)."""
    code = "no status" if status is None else f"0x{status:04X}"
    if status == 0xA801:
        text = (
            f"{operation} failed with {code} (move destination unknown): the PACS does not know this node's AE title "
            f"{our_ae}: add it there (AE title {our_ae}, this node's host and DICOM port) as a DICOM destination"
        )
    elif status is not None and status & 0xFF00 == 0xA700:
        text = f"{operation} failed with {code} (out of resources, e.g. unable to perform the sub-operations): the PACS could not perform it now"
    elif status == 0xA900:
        text = f"{operation} failed with {code} (identifier does not match SOP class): the PACS refused the query"
    elif status == 0x0122:
        text = f"{operation} failed with {code} (SOP class not supported): the PACS does not offer this query/retrieve model"
    elif status == 0xB000:
        text = f"{operation} ended with {code} (warning): one or more sub-operations failed"
    elif status == 0xFE00:
        text = f"{operation} was cancelled ({code})"
    elif status is not None and status & 0xF000 == 0xC000 and operation == "C-MOVE":
        text = (
            f"{operation} failed with {code} (unable to process): the PACS could not perform it. Some PACS answer this, not "
            f"0xA801, when they do not know the move destination (Orthanc 1.10 does): check that the PACS knows this node's "
            f"AE title {our_ae} (AE title, host and DICOM port), and add it there if not"
        )
    elif status is not None and status & 0xF000 == 0xC000:
        text = f"{operation} failed with {code} (unable to process): the PACS could not perform it"
    elif status is None:
        text = f"{operation}: no answer from the PACS (the association was aborted or timed out)"
    else:
        text = f"{operation} failed with {code}"
    return f"{text}{f'; the PACS says: {comment}' if comment else ''}"


def resolve_source(config: Config, name: str) -> Destination:
    """A configured source by name, or `AE@host:port` (retrieved by C-MOVE); ValueError saying what is wrong."""
    for dest in config.sources:
        if dest.name == name:
            return dest
    if "@" not in name:
        configured = ", ".join(dest.name for dest in config.sources) or "none"
        raise ValueError(f"source {name!r} is not configured (sources: {configured}; or give AE@host:port)")
    address = parse_address(name)
    return Destination(name=name, ae_title=address.ae_title, host=address.host, port=address.port, retrieve_method="C-MOVE")


def _failure(message: str, status: int) -> Exception:
    """Out of resources (0xA7xx) may pass: retried like a PACS that is down; any other failure is for good."""
    return PeerUnavailable(message) if status & 0xFF00 == 0xA700 else RetrieveRefused(message, status)


def _value(ds: Dataset | None, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip() if ds is not None else ""


class QueryRetrieveScu:
    """One source PACS as seen by the node's AE (the calling AE of `export`), with the timeouts of `retrieve`."""

    def __init__(self, source: Destination, settings: RetrieveSettings, calling_ae: str) -> None:
        self.source = source
        self.address = DicomAddress(source.ae_title, source.host, source.port)
        self.calling_ae = calling_ae
        self._tls = tls_args(source)
        self._ae = AE(ae_title=calling_ae)
        self._ae.connection_timeout = settings.connection_timeout
        self._ae.acse_timeout = settings.acse_timeout
        self._ae.dimse_timeout = settings.dimse_timeout
        self._ae.network_timeout = settings.dimse_timeout

    @contextmanager
    def _association(self, contexts: list, **kwargs: object) -> Iterator[Association]:  # type: ignore[type-arg]
        assoc = associate(self._ae, self.address, contexts, self._tls, **kwargs)
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    # C-FIND -------------------------------------------------------------------
    def find(self, query: StudyQuery, modalities: Sequence[str]) -> list[RemoteSeries]:
        """Every series (of `modalities`; all if empty) of the matching studies, with their instances."""
        with self._association([build_context(StudyRootQueryRetrieveInformationModelFind)]) as assoc:
            studies = [_value(ds, "StudyInstanceUID") for ds in self._find(assoc, study_identifier(query))]
            found: list[RemoteSeries] = []
            for study in dict.fromkeys(uid for uid in studies if uid):
                series_query = Dataset()
                series_query.QueryRetrieveLevel = "SERIES"
                series_query.StudyInstanceUID = study
                series_query.SeriesInstanceUID = query.series_instance_uid
                series_query.Modality = ""
                for series in self._find(assoc, series_query):
                    modality, uid = _value(series, "Modality"), _value(series, "SeriesInstanceUID")
                    if uid and (not modalities or modality in modalities):
                        found.append(RemoteSeries(study, uid, modality, tuple(self._instances(assoc, study, uid))))
        return found

    def _instances(self, assoc: Association, study: str, series: str) -> Iterator[RemoteInstance]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = ""
        ds.SOPClassUID = ""
        for hit in self._find(assoc, ds):
            if _value(hit, "SOPInstanceUID"):
                yield RemoteInstance(_value(hit, "SOPClassUID"), _value(hit, "SOPInstanceUID"))

    def _find(self, assoc: Association, identifier: Dataset) -> list[Dataset]:
        matches: list[Dataset] = []
        for status, found in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            code = int(status.Status) if "Status" in status else None
            if code in PENDING:
                matches.append(found)
            elif code == 0x0000:
                return matches
            elif code is None:
                raise PeerUnavailable(f"{self.address} did not answer the C-FIND (association aborted or timed out)")
            else:
                raise _failure(explain_status(code, "C-FIND", self.calling_ae, _value(status, "ErrorComment")), code)
        raise PeerUnavailable(f"{self.address} ended the C-FIND without a final status")

    # C-MOVE and C-GET ---------------------------------------------------------
    @staticmethod
    def _retrieve_identifier(series: RemoteSeries, sop_instance_uid: str | None) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if sop_instance_uid is None else "IMAGE"
        ds.StudyInstanceUID = series.study_instance_uid
        ds.SeriesInstanceUID = series.series_instance_uid
        if sop_instance_uid is not None:
            ds.SOPInstanceUID = sop_instance_uid
        return ds

    def move(self, series: RemoteSeries, missing: Sequence[str] | None, destination_ae: str, message_id: int) -> RetrieveResult:
        """C-MOVE the series (`missing` None) or only those instances to `destination_ae`, on one association."""
        with self._association([build_context(StudyRootQueryRetrieveInformationModelMove)]) as assoc:
            return self._sum(
                "C-MOVE",
                destination_ae,
                (
                    assoc.send_c_move(self._retrieve_identifier(series, uid), destination_ae, StudyRootQueryRetrieveInformationModelMove, msg_id=message_id)
                    for uid in ([None] if missing is None else missing)
                ),
            )

    def get(self, series: RemoteSeries, missing: Sequence[str] | None, store: Callable[[evt.Event], int], message_id: int) -> RetrieveResult:
        """C-GET the series (or only `missing`); every instance arrives on this association and goes to `store`,
        whose return value is the C-STORE status."""
        classes = series.sop_class_uids
        contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)]
        contexts += [build_context(uid, syntax) for uid in classes for syntax in TRANSFER_SYNTAXES[:GET_SYNTAXES_PER_CLASS]]
        roles = [build_role(uid, scp_role=True) for uid in classes]
        with self._association(contexts, ext_neg=roles, handlers=[(evt.EVT_C_STORE, store)]) as assoc:
            return self._sum(
                "C-GET",
                self.calling_ae,
                (
                    assoc.send_c_get(self._retrieve_identifier(series, uid), StudyRootQueryRetrieveInformationModelGet, msg_id=message_id)
                    for uid in ([None] if missing is None else missing)
                ),
            )

    def _sum(self, operation: str, our_ae: str, answers: Iterator[Iterator[tuple[Dataset, Dataset | None]]]) -> RetrieveResult:
        """Run each C-MOVE/C-GET in turn and add up their final answers; the first failure status raises (explained
        naming `our_ae`, the AE title the PACS must know)."""
        completed = failed = warning = 0
        last_status, comment = 0x0000, ""
        for responses in answers:
            final: Dataset | None = None
            for status, _identifier in responses:
                if "Status" not in status:
                    raise PeerUnavailable(f"{self.address} did not answer the {operation} (association aborted or timed out)")
                if int(status.Status) not in PENDING:
                    final = status
            if final is None:
                raise PeerUnavailable(f"{self.address} ended the {operation} without a final status")
            code = int(final.Status)
            count = lambda keyword: int(final.get(keyword, 0) or 0)  # noqa: E731
            if code not in (0x0000, 0xB000) and code & 0xF000 != 0xB000:
                raise _failure(explain_status(code, operation, our_ae, _value(final, "ErrorComment")), code)
            completed += count("NumberOfCompletedSuboperations")
            failed += count("NumberOfFailedSuboperations")
            warning += count("NumberOfWarningSuboperations")
            if code != 0x0000:
                last_status, comment = code, _value(final, "ErrorComment")
        return RetrieveResult(last_status, completed, failed, warning, comment)
