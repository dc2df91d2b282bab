"""An inference request as clients write it (MONAI Deploy Informatics Gateway's field names) and its status as they read it.

The body follows MIG's `POST /inference` (after the ACR DSI draft) where it fits:

    {"transactionID": "order-42", "priority": 128,
     "inputMetadata": {"details": {"type": "DICOM_UID", "studies": [{"StudyInstanceUID": "1.2.3", "series": []}]}},
     "inputResources": [{"interface": "Algorithm", "connectionDetails": {"name": "covid19_ct"}},
                        {"interface": "DIMSE", "connectionDetails": {"name": "PACS"}}],
     "outputResources": [{"interface": "DIMSE", "connectionDetails": {"name": "PACS"}}]}

with `details.type` also `ACCESSION_NUMBER` (`accessionNumbers`: one) or `DICOM_PATIENT_ID` (`PatientID`, optional
`studyDateFrom`/`studyDateTo`, YYYYMMDD). The source is a configured source's name or `AE@host:port`
(`connectionDetails.name` or `uri`); outputs default to the pipeline's destinations; `force` re-runs series whose
results of the same algorithm version exist. Every mistake is reported at once (`parse_request`), as RFC 7807 asks.
The CLI's `process` builds the same body, so both are checked alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.config import Config
from dicom_node.net.retrieve import resolve_source
from dicom_node.store.inference_requests import InferenceRequests, RequestSpec, StudyQuery
from dicom_node.store.models import Export, InferenceRequest, InferenceRequestSeries, Job
from dicom_node.store.rows import export_row, iso

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
DATE_RE = re.compile(r"^[0-9]{8}$")
SOURCE_INTERFACES = ("DIMSE", "DICOMweb")


def _uid(value: str) -> str:
    if len(value) > 64 or not UID_RE.match(value):
        raise ValueError("not a DICOM UID (digits and dots, at most 64 characters, no leading zeros)")
    return value


def _date(value: str) -> str:
    if value and not DATE_RE.match(value):
        raise ValueError("a date is YYYYMMDD")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesInput(Strict):
    SeriesInstanceUID: str
    _uid = field_validator("SeriesInstanceUID")(_uid)


class StudyInput(Strict):
    StudyInstanceUID: str
    series: list[SeriesInput] = Field(default_factory=list, max_length=1)
    _uid = field_validator("StudyInstanceUID")(_uid)


class InputDetails(Strict):
    type: Literal["DICOM_UID", "ACCESSION_NUMBER", "DICOM_PATIENT_ID"]
    studies: list[StudyInput] = Field(default_factory=list)
    accessionNumbers: list[str] = Field(default_factory=list)
    PatientID: str = Field(default="", max_length=64)
    studyDateFrom: str = ""
    studyDateTo: str = ""

    _dates = field_validator("studyDateFrom", "studyDateTo")(_date)

    @model_validator(mode="after")
    def _by_type(self) -> InputDetails:
        if self.type == "DICOM_UID" and len(self.studies) != 1:
            raise ValueError("type DICOM_UID needs exactly one entry in studies")
        if self.type == "ACCESSION_NUMBER" and (len(self.accessionNumbers) != 1 or not self.accessionNumbers[0].strip()):
            raise ValueError("type ACCESSION_NUMBER needs exactly one accession number in accessionNumbers")
        if self.type == "DICOM_PATIENT_ID" and not self.PatientID.strip():
            raise ValueError("type DICOM_PATIENT_ID needs PatientID")
        if self.studyDateFrom and self.studyDateTo and self.studyDateFrom > self.studyDateTo:
            raise ValueError("studyDateFrom is after studyDateTo")
        return self

    def query(self) -> StudyQuery:
        if self.type == "DICOM_UID":
            study = self.studies[0]
            return StudyQuery(study_instance_uid=study.StudyInstanceUID, series_instance_uid=study.series[0].SeriesInstanceUID if study.series else "")
        if self.type == "ACCESSION_NUMBER":
            return StudyQuery(accession_number=self.accessionNumbers[0].strip())
        return StudyQuery(patient_id=self.PatientID.strip(), study_date_from=self.studyDateFrom, study_date_to=self.studyDateTo)


class InputMetadata(Strict):
    details: InputDetails


class ConnectionDetails(BaseModel):
    model_config = ConfigDict(extra="ignore")  # MIG's authType/authId and the like: the node's source configuration holds those
    name: str = ""
    uri: str = ""

    @property
    def target(self) -> str:
        return self.name or self.uri


class Resource(Strict):
    interface: Literal["Algorithm", "DIMSE", "DICOMweb"]
    connectionDetails: ConnectionDetails


class RequestBody(Strict):
    transactionID: str = Field(min_length=1, max_length=256)
    priority: int = Field(default=128, ge=0, le=255)
    inputMetadata: InputMetadata
    inputResources: list[Resource] = Field(min_length=1)
    outputResources: list[Resource] = Field(default_factory=list)
    force: bool = False


@dataclass(frozen=True)
class Problem:
    """One mistake: where (a JSON pointer into the body) and what."""

    pointer: str
    detail: str


def _pointer(loc: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(part) for part in loc)


def _resource_problems(raw: dict[str, Any], config: Config) -> list[Problem]:
    """The names a body refers to that this node does not know: pipelines, the source, destinations."""
    problems: list[Problem] = []
    sources = 0
    for key in ("inputResources", "outputResources"):
        items = raw.get(key)
        for index, item in enumerate(items if isinstance(items, list) else []):
            details = item.get("connectionDetails") if isinstance(item, dict) else None
            if not isinstance(details, dict):
                continue
            target = str(details.get("name") or details.get("uri") or "")
            where = f"/{key}/{index}/connectionDetails/{'name' if details.get('name') else 'uri'}"
            interface = item.get("interface")
            if key == "inputResources" and interface == "Algorithm":
                if target not in config.pipelines:
                    problems.append(Problem(where, f"unknown pipeline {target!r} (pipelines: {', '.join(config.pipelines)})"))
            elif key == "inputResources" and interface in SOURCE_INTERFACES:
                sources += 1
                try:
                    resolve_source(config, target)
                except ValueError as exc:
                    problems.append(Problem(where, str(exc)))
            elif key == "outputResources" and interface == "DIMSE" and target not in {d.name for d in config.destinations}:
                names = ", ".join(d.name for d in config.destinations) or "none"
                problems.append(Problem(where, f"unknown destination {target!r} (destinations: {names})"))
    if isinstance(raw.get("inputResources"), list) and sources != 1:
        problems.append(Problem("/inputResources", f"exactly one source (interface DIMSE or DICOMweb) is needed, {sources} given"))
    return problems


def parse_request(raw: Any, config: Config) -> RequestSpec | list[Problem]:
    """The request to store, or every problem of the body at once."""
    if not isinstance(raw, dict):
        return [Problem("", "the body must be a JSON object")]
    problems: list[Problem] = []
    body: RequestBody | None = None
    try:
        body = RequestBody.model_validate(raw)
    except ValidationError as exc:
        problems += [Problem(_pointer(error["loc"]), error["msg"]) for error in exc.errors()]
    problems += _resource_problems(raw, config)
    if problems or body is None:
        return problems
    source = next(r.connectionDetails.target for r in body.inputResources if r.interface in SOURCE_INTERFACES)
    pipelines = [r.connectionDetails.target for r in body.inputResources if r.interface == "Algorithm"] or config.dicom.called_aes[0].pipelines
    return RequestSpec(
        transaction_id=body.transactionID,
        query=body.inputMetadata.details.query(),
        source=source,
        pipelines=list(dict.fromkeys(pipelines)),
        destinations=list(dict.fromkeys(r.connectionDetails.target for r in body.outputResources)),
        priority=body.priority,
        force=body.force,
    )


def problem_document(problems: list[Problem]) -> dict[str, Any]:
    """RFC 7807 (application/problem+json), every error listed."""
    return {
        "type": "about:blank",
        "title": "Invalid inference request",
        "status": 422,
        "detail": f"{len(problems)} error(s) in the request",
        "errors": [{"pointer": p.pointer, "detail": p.detail} for p in problems],
    }


# The status ----------------------------------------------------------------------------
def request_status(session: Session, row: InferenceRequest, requests: InferenceRequests, calling_ae: str) -> dict[str, Any]:
    """Where the request stands, as truthfully as the index knows it."""
    series_rows = list(session.scalars(select(InferenceRequestSeries).where(InferenceRequestSeries.request_fk == row.id)))
    uids = [s.series_instance_uid for s in series_rows]
    job_ids = [s.job_fk for s in series_rows if s.job_fk is not None]
    jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))} if job_ids else {}
    exports = list(session.scalars(select(Export).where(Export.job_fk.in_(job_ids)).order_by(Export.id))) if job_ids else []
    series = []
    for s in series_rows:
        job = jobs.get(s.job_fk) if s.job_fk is not None else None
        series.append(
            {
                "seriesInstanceUID": s.series_instance_uid,
                "studyInstanceUID": s.study_instance_uid,
                "modality": s.modality,
                "state": s.state,
                "reason": s.reason,
                "instancesExpected": s.expected,
                "instancesStored": len(requests.stored_instances(s.series_instance_uid)),
                "instancesAlreadyPresent": s.present_before,
                "job": None if job is None else {"id": job.id, "pipeline": job.pipeline, "state": job.state, "reason": job.reason, "result": job.result},
            }
        )
    return {
        "id": row.id,
        "transactionID": row.transaction_id,
        "priority": row.priority,
        "state": row.state,
        "source": row.source,
        "inputs": {key: value for key, value in row.inputs.items() if value},
        "pipelines": row.pipelines,
        "destinations": row.destinations,
        "force": row.force,
        "partial": row.partial,
        "instances": {
            "expected": sum(s.expected for s in series_rows),
            "received": requests.received(row, calling_ae, uids),
            "alreadyPresent": sum(s.present_before for s in series_rows),
        },
        "series": series,
        "exports": [export_row(e) for e in exports],
        "errors": row.errors,
        "attempts": row.attempts,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
        "retrieveStartedAt": iso(row.retrieve_started_at),
        "retrieveEndedAt": iso(row.retrieve_ended_at),
        "finishedAt": iso(row.finished_at),
    }
