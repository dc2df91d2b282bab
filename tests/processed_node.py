"""One real node, started through its CLI with one worker and HTTP on a free port, that received and processed P001.

Shared by the whole session (the pipeline on P001 costs seconds of CPU): the
end-to-end pipeline test reads its job and files, the browser test opens its
viewer. Tests may send it more series, but must not change P001's job.
`process_p001` makes such a node with other settings (more pipelines on its AE).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@contextmanager
def process_p001(tmp: Path, settings: dict[str, Any], bind_ae: bool = True, pipelines: Sequence[str] = ("covid19_ct",)) -> Iterator[dict[str, ProcessedSeries]]:
    """A node in `tmp` (one worker, HTTP with OHIF on a free port; `settings` on top) that received P001 by storescu,
    once each of `pipelines`' jobs of it finished: their `ProcessedSeries` by pipeline. The node stops on exit."""
    source = shared_series("covid-ct-md", "P001")
    header = pydicom.dcmread(next(source.glob("*.dcm")), stop_before_pixels=True)
    http_port = free_port()
    base = {"jobs": {"workers": 1}, "http": {"port": http_port, "ohif_dir": str(REPO / ".cache" / "ohif")}}
    merged = {**base, **{k: {**base.get(k, {}), **v} if isinstance(v, dict) else v for k, v in settings.items()}}
    node = NodeProcess(tmp, bind_ae=bind_ae, settings=merged)
    node.start(timeout=60)
    try:
        wait_for_port(http_port, 30, node.proc)
        sent = storescu(node.port, source)  # -xs: JPEG lossless as stored
        assert sent.returncode == 0, sent.stderr
        jobs = {pipeline: wait_for_finished_job(node.data_dir, header.SeriesInstanceUID, 240, pipeline) for pipeline in pipelines}
        ((series_id,),) = query(node.data_dir, "SELECT id FROM series WHERE series_instance_uid = ?", header.SeriesInstanceUID)
        yield {
            pipeline: ProcessedSeries(
                node, source, f"http://127.0.0.1:{http_port}", header.SeriesInstanceUID, header.StudyInstanceUID, series_id, *job
            )
            for pipeline, job in jobs.items()
        }
    finally:
        node.stop()


@pytest.fixture(scope="session")
def processed_p001(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessedSeries]:
    with process_p001(tmp_path_factory.mktemp("p001-node"), {}) as processed:
        yield processed["covid19_ct"]
