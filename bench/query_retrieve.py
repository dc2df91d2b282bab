#!/usr/bin/env python3
"""C-FIND over 10,000 indexed instances: how long a study-level query takes, in the index and over the network.

Fills a fresh SQLite index (synthetic rows: tests/qrscp/synthetic_index.py, 100 studies of 2 CT series of 50
instances and a SEG result each = 10,100 instances), starts a real node on it (`dicom-node serve`, the index
as the node's own), and asks it over one association, with pynetdicom as the workstation:
  study-by-patient   Study Root, STUDY level, PatientID exact, with ModalitiesInStudy and the counts returned
  study-date-range   Study Root, STUDY level, a one-year StudyDate range (about 20 studies), same keys
  study-name-wild    Patient Root, STUDY level, PatientName=patient^number0001* (case-insensitive wildcard, 10 patients)
Also the same queries in-process (`catalogue.find`, no network), and a C-ECHO on the same association: the floor
of a round trip through the node's two threads per association on this machine as loaded now (compare the C-FIND
figures with it, in the same run). Prints the median and worst milliseconds per query (request to final response).

    PYTHONPATH=. .venv/bin/python bench/query_retrieve.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydicom.dataset import Dataset  # noqa: E402
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicom_node.net.sockets import disable_nagle  # noqa: E402
from dicom_node.store.catalogue import Query, find  # noqa: E402
from dicom_node.store.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from tests.node_process import NodeProcess  # noqa: E402
from tests.qrscp.synthetic_index import Shape, fill  # noqa: E402

SHAPE = Shape(studies=100, series_per_study=2, instances_per_series=50)
RETURNED = ("StudyInstanceUID", "StudyDate", "AccessionNumber", "PatientName", "PatientID", "ModalitiesInStudy", "NumberOfStudyRelatedInstances")
QUERIES: dict[str, tuple[str, dict[str, str]]] = {
    "study-by-patient": (StudyRootQueryRetrieveInformationModelFind, {"PatientID": "PID00042"}),
    "study-date-range": (StudyRootQueryRetrieveInformationModelFind, {"StudyDate": "20210101-20211231"}),
    "study-name-wild": (PatientRootQueryRetrieveInformationModelFind, {"PatientName": "patient^number0001*"}),
}


def identifier(keys: dict[str, str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in RETURNED:
        setattr(ds, keyword, keys.get(keyword, ""))
    return ds


def report(name: str, times: list[float], matches: int) -> None:
    print(f"{name:24s} median {statistics.median(times):7.2f} ms   worst {max(times):7.2f} ms   ({matches} matches)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        node = NodeProcess(Path(tmp), settings={"dicom": {"allowed_sources": [{"ae_title": "BENCH", "query_retrieve": True}]}, "node": {"log_level": "WARNING"}})
        node.data_dir.mkdir(parents=True)
        url = f"sqlite:///{node.data_dir / 'index.sqlite3'}"
        upgrade(url)
        engine = make_engine(url)
        with make_sessionmaker(engine).begin() as session:
            fill(session, SHAPE)
        print(f"{SHAPE.instances} indexed instances in {SHAPE.studies} studies; {args.rounds} rounds per query")
        print("in-process (catalogue.find):")
        sessions = make_sessionmaker(engine)
        for name, (_model, keys) in QUERIES.items():
            query = Query.of("STUDY", {keyword: keys.get(keyword, "") for keyword in RETURNED})
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                with sessions() as session:
                    matches = find(session, query, 1000)
                times.append((time.perf_counter() - start) * 1000)
            report(name, times, len(matches))
        engine.dispose()
        node.start()
        try:
            ae = AE(ae_title="BENCH")
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
            ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
            ae.add_requested_context(Verification)
            # Without TCP_NODELAY on the workstation's side, a C-FIND-RQ's data set PDU waits for the ACK of its command
            # PDU (Nagle), which the node's kernel delays by some 40 ms: dcmtk has TCP_NODELAY=1, the node sets it.
            assoc = ae.associate("127.0.0.1", node.port, ae_title=node.ae, evt_handlers=[(evt.EVT_CONN_OPEN, disable_nagle)])
            assert assoc.is_established, node.log()[-2000:]
            print("over the network (C-FIND request to final response, one association):")
            try:
                times = []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    assoc.send_c_echo()
                    times.append((time.perf_counter() - start) * 1000)
                report("C-ECHO (reference)", times, 0)
                for name, (model, keys) in QUERIES.items():
                    times = []
                    for _ in range(args.rounds):
                        start = time.perf_counter()
                        answers = [found for status, found in assoc.send_c_find(identifier(keys), model) if status.Status in (0xFF00, 0xFF01)]
                        times.append((time.perf_counter() - start) * 1000)
                    report(name, times, len(answers))
            finally:
                assoc.release()
        finally:
            node.stop()


if __name__ == "__main__":
    main()
