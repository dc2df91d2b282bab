"""Synthetic index rows for the Query/Retrieve SCP's tests and benchmark: patients, studies, CT series and their
instances as the receive path indexes them, and a done job's SEG per study as the worker indexes results.

No files: C-FIND answers from the index alone, which is what these rows let a test or benchmark check at any size.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from dicom_node.store.models import Instance, Job, Patient, ResultInstance, Series, Study, utcnow

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SEG = "1.2.840.10008.5.1.4.1.1.66.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ROOT = "1.2.826.0.1.3680043.10.999"


@dataclass(frozen=True)
class Shape:
    studies: int
    series_per_study: int
    instances_per_series: int
    studies_per_patient: int = 2

    @property
    def instances(self) -> int:
        """Received instances plus one result (SEG) per study."""
        return self.studies * (self.series_per_study * self.instances_per_series + 1)


def study_uid(number: int) -> str:
    return f"{ROOT}.{number}"


def study_date(number: int) -> str:
    """Studies spread over 2019-2023, on the 1st to the 28th of each month."""
    return f"{2019 + number % 5}{1 + number % 12:02d}{1 + number % 28:02d}"


def study_time(number: int) -> str:
    """Studies from 07:00 to 18:59, with fractions of a second as modalities write them."""
    return f"{7 + number % 12:02d}{number % 60:02d}00.{number:06d}"


def fill(session: Session, shape: Shape) -> None:
    """Add the rows in a few bulk inserts (the caller commits)."""
    now = utcnow()
    patients = -(-shape.studies // shape.studies_per_patient)
    session.execute(insert(Patient), [
        {"id": p + 1, "patient_id": f"PID{p:05d}", "issuer": "", "patient_name": f"PATIENT^NUMBER{p:05d}", "birth_date": "19600101", "sex": "O"}
        for p in range(patients)
    ])
    session.execute(insert(Study), [
        {"id": s + 1, "study_instance_uid": study_uid(s), "patient_fk": s // shape.studies_per_patient + 1,
         "patient_name": f"PATIENT^NUMBER{s // shape.studies_per_patient:05d}", "study_date": study_date(s), "study_time": study_time(s), "study_id": str(s), "accession_number": f"ACC{s:06d}",
         "description": "CT CHEST", "created_at": now}
        for s in range(shape.studies)
    ])
    series_rows, instance_rows, job_rows, result_rows = [], [], [], []
    for s in range(shape.studies):
        for k in range(shape.series_per_study):
            series_id = s * shape.series_per_study + k + 1
            series_rows.append({"id": series_id, "series_instance_uid": f"{study_uid(s)}.{k + 1}", "study_fk": s + 1, "modality": "CT",
                                "description": "", "series_number": k + 1, "pipeline": "covid19_ct", "instance_count": shape.instances_per_series,
                                "pending": False, "created_at": now})
            instance_rows += [
                {"sop_instance_uid": f"{study_uid(s)}.{k + 1}.{i + 1}", "sop_class_uid": CT_IMAGE, "series_fk": series_id, "instance_number": i + 1,
                 "transfer_syntax_uid": EXPLICIT_LE, "path": f"synthetic/{s}/{k}/{i}.dcm", "size": 0, "received_at": now}
                for i in range(shape.instances_per_series)
            ]
        job_rows.append({"id": s + 1, "series_fk": s * shape.series_per_study + 1, "pipeline": "covid19_ct", "state": "done", "created_at": now,
                         "steps": {}, "result": {}})
        result_rows.append({"job_fk": s + 1, "study_fk": s + 1, "series_instance_uid": f"{study_uid(s)}.900", "modality": "SEG", "series_number": 900,
                            "series_description": "Lungs", "sop_instance_uid": f"{study_uid(s)}.900.1", "sop_class_uid": SEG, "instance_number": 1,
                            "transfer_syntax_uid": EXPLICIT_LE, "path": f"results/{s + 1}/seg.dcm"})
    session.execute(insert(Series), series_rows)
    session.execute(insert(Instance), instance_rows)
    session.execute(insert(Job), job_rows)
    session.execute(insert(ResultInstance), result_rows)
