"""One real node, started through its CLI with one worker and HTTP on a free port, that received and processed P001.

Shared by the whole session (the pipeline on P001 costs seconds of CPU): the
end-to-end pipeline test reads its job and files, the browser test opens its
viewer. Tests may send it more series, but must not change P001's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from tests.dcmtk import storescu
from tests.node.index import query, wait_for_finished_job
from tests.node_process import REPO, NodeProcess, free_port, shared_series, wait_for_port


@dataclass(frozen=True)
class ProcessedSeries:
    node: NodeProcess
    source: Path  # the folder that was sent
    http_url: str
    series_instance_uid: str
    study_instance_uid: str
    series_id: int  # the index's (and the API's) id of the series
    job_id: int
    state: str
    reason: str


@pytest.fixture(scope="session")
def processed_p001(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessedSeries]:
    source = shared_series("covid-ct-md", "P001")
    header = pydicom.dcmread(next(source.glob("*.dcm")), stop_before_pixels=True)
    http_port = free_port()
    node = NodeProcess(
        tmp_path_factory.mktemp("p001-node"),
        settings={"jobs": {"workers": 1}, "http": {"port": http_port, "ohif_dir": str(REPO / ".cache" / "ohif")}},
    )
    node.start(timeout=60)
    try:
        wait_for_port(http_port, 30, node.proc)
        sent = storescu(node.port, source)  # -xs: JPEG lossless as stored
        assert sent.returncode == 0, sent.stderr
        job_id, state, reason = wait_for_finished_job(node.data_dir, header.SeriesInstanceUID, timeout=240)
        ((series_id,),) = query(node.data_dir, "SELECT id FROM series WHERE series_instance_uid = ?", header.SeriesInstanceUID)
        yield ProcessedSeries(
            node, source, f"http://127.0.0.1:{http_port}", header.SeriesInstanceUID, header.StudyInstanceUID, series_id, job_id, state, reason
        )
    finally:
        node.stop()
