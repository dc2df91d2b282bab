"""Database rows as the JSON objects the API and the CLI print (one definition, so both agree)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydicom.uid import UID_dictionary

from dicom_node.store.models import Association, Export, Job, Series, Study

OBJECT_TYPES = {
    "SegmentationStorage": "SEG",
    "KeyObjectSelectionDocumentStorage": "KO",
    "SecondaryCaptureImageStorage": "SC",
}


def object_type(sop_class_uid: str) -> str:
    """What an operator calls a result object (SEG, SR, SC, KO), from its SOP class; others by the class's keyword."""
    entry = UID_dictionary.get(sop_class_uid)  # a plain lookup: a malformed UID in an old row must not warn
    keyword = entry[4] if entry else sop_class_uid
    if keyword.endswith("SRStorage"):
        return "SR"
    if "SecondaryCapture" in keyword:
        return "SC"
    return OBJECT_TYPES.get(keyword, keyword)


def iso(moment: datetime | None) -> str | None:
    """Naive UTC from the database as ISO 8601 with its offset (+00:00), so no reader mistakes it for local time."""
    return moment.replace(tzinfo=timezone.utc).isoformat() if moment else None


def association_row(row: Association) -> dict[str, Any]:
    return {
        "id": row.id,
        "uuid": row.uuid,
        "node": row.node,
        "calling_ae": row.calling_ae,
        "called_ae": row.called_ae,
        "peer_host": row.peer_host,
        "peer_port": row.peer_port,
        "state": row.state,
        "instances_received": row.instances_received,
        "bytes_received": row.bytes_received,
        "failures": row.failures,
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
    }


def patient_fields(study: Study) -> dict[str, Any]:
    """Who the study is of: the name it was received with, and whether the same patient (PatientID within its
    issuer) came with another name in another study, which a user must see before trusting the match."""
    return {
        "patient_id": study.patient.patient_id,
        "issuer_of_patient_id": study.patient.issuer,
        "patient_name": study.patient_name,
        "patient_name_conflict": study.patient.names_differ,
    }


def study_row(row: Study) -> dict[str, Any]:
    return {
        "id": row.id,
        "study_instance_uid": row.study_instance_uid,
        **patient_fields(row),
        "study_date": row.study_date,
        "accession_number": row.accession_number,
        "description": row.description,
        "created_at": iso(row.created_at),
    }


def series_row(row: Series) -> dict[str, Any]:
    return {
        "id": row.id,
        "series_instance_uid": row.series_instance_uid,
        "study_id": row.study_fk,
        "study_instance_uid": row.study.study_instance_uid,
        **patient_fields(row.study),
        "study_date": row.study.study_date,
        "modality": row.modality,
        "description": row.description,
        "series_number": row.series_number,
        "pipeline": row.pipeline,
        "instance_count": row.instance_count,
        "pending": row.pending,
        "last_received_at": iso(row.last_received_at),
        "last_released_at": iso(row.last_released_at),
        "created_at": iso(row.created_at),
    }


def export_row(row: Export) -> dict[str, Any]:
    return {
        "id": row.id,
        "job_id": row.job_fk,
        "destination": row.destination,
        "sop_instance_uid": row.sop_instance_uid,
        "sop_class_uid": row.sop_class_uid,
        "object_type": object_type(row.sop_class_uid),
        "path": row.path,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
    }


def job_row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state,
        "pipeline": job.pipeline,
        "series_instance_uid": job.series.series_instance_uid,
        "study_instance_uid": job.series.study.study_instance_uid,
        "patient_id": job.series.study.patient.patient_id,
        "patient_name": job.series.study.patient.patient_name,
        "instances": job.instance_count,
        "attempts": job.attempts,
        "reason": job.reason,
        "input_incomplete": job.input_incomplete,
        "not_before": iso(job.not_before),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "steps": job.steps,
        "result": job.result,
    }
