"""A called AE with several pipelines: one job per pipeline for each settled series, and each pipeline's results
replace only that pipeline's earlier ones (the other pipeline's results of the series stand)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from dicom_node.config import ExportSettings
from dicom_node.store.ingest import Indexer, InstanceMeta
from dicom_node.store.jobs import JobQueue
from dicom_node.store.models import Export, Job, pipeline_names, pipelines_value, utcnow
from dicom_node.store.outbox import Outbox

BOTH = ("covid19_ct", "lung_density")


def receive(indexer: Indexer, series: str, n: int, pipelines: tuple[str, ...], start: int = 0) -> None:
    for i in range(start, start + n):
        meta = InstanceMeta(
            sop_instance_uid=f"{series}.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            study_instance_uid="1.2.3", series_instance_uid=series, transfer_syntax_uid="1.2.840.10008.1.2.1",
            patient_id="P1", modality="CT",
        )
        indexer.record(meta, Path(f"instances/{series}/{i}.dcm"), 100, None, pipelines_value(pipelines), replace=False)


def later(seconds: float = 10):
    return utcnow() + timedelta(seconds=seconds)


def jobs(sessions) -> list[tuple[int, str, str, int | None]]:
    with sessions() as s:
        return [(j.id, j.pipeline, j.state, j.superseded_by) for j in s.scalars(select(Job).order_by(Job.id))]


def test_the_series_value_lists_the_pipelines_in_order_and_old_rows_name_one() -> None:
    assert pipeline_names(pipelines_value(BOTH)) == list(BOTH)
    assert pipeline_names("covid19_ct") == ["covid19_ct"]
    assert pipeline_names("") == []


def test_one_job_per_pipeline_and_a_new_round_supersedes_each_by_its_own(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.7", 3, BOTH)
    first = queue.queue_settled(1.0, now=later())
    assert [(p, s) for _, p, s, _ in jobs(sessions)] == [("covid19_ct", "queued"), ("lung_density", "queued")]

    receive(indexer, "1.2.3.7", 2, BOTH, start=3)
    second = queue.queue_settled(1.0, now=later())

    by = dict(zip(BOTH, second))
    assert jobs(sessions) == [
        (first[0], "covid19_ct", "superseded", by["covid19_ct"]),
        (first[1], "lung_density", "superseded", by["lung_density"]),
        (second[0], "covid19_ct", "queued", None),
        (second[1], "lung_density", "queued", None),
    ]


def test_a_pipelines_result_supersedes_only_its_own_pipelines_exports(sessions, tmp_path: Path) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.8", 3, BOTH)
    covid, density = queue.queue_settled(1.0, now=later())
    with sessions.begin() as s:
        for job_id, uid in ((covid, "9.1"), (density, "9.2")):
            s.add(Export(job_fk=job_id, destination="PACS", sop_instance_uid=uid, sop_class_uid="1.2", path=f"x{uid}", state="sent"))
        series_id = s.get_one(Job, covid).series_fk
        newer = Job(series_fk=series_id, pipeline="covid19_ct", state="running", steps={}, result={})
        s.add(newer)
        s.flush()
        newer_id = newer.id
    outbox = Outbox(sessions, ExportSettings(), tmp_path)

    with sessions.begin() as s:
        superseded = outbox.supersede_in(s, newer_id, series_id, "covid19_ct", kept=["9.3"])

    assert [old.sop_instance_uid for old in superseded] == ["9.1"]
    with sessions() as s:
        assert dict(s.execute(select(Export.sop_instance_uid, Export.state)).all()) == {"9.1": "superseded", "9.2": "sent"}


def test_the_result_a_new_job_replaces_is_its_own_pipelines(sessions) -> None:
    queue, indexer = JobQueue(sessions, "n1"), Indexer(sessions)
    receive(indexer, "1.2.3.9", 3, BOTH)
    queue.queue_settled(1.0, now=later())
    for _ in BOTH:
        claimed = queue.claim("n1/w0")
        assert queue.finish(claimed, "done", result={"files": {"sr": f"results/{claimed.id}/sr.dcm"}})
    receive(indexer, "1.2.3.9", 1, BOTH, start=3)
    queue.queue_settled(1.0, now=later())
    claimed = queue.claim("n1/w0")
    assert claimed.pipeline == "covid19_ct"

    earlier = queue.earlier_result(claimed, lambda stored: stored["files"]["sr"])

    assert earlier is not None and earlier.job_id == 1 and earlier.sr_path == "results/1/sr.dcm"
