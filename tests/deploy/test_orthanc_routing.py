"""deploy/orthanc/route-ct-to-dicom-node.lua routes: Orthanc (Debian's, as in the compose file's local image) with
the script as it ships forwards a CT series it received to the node, once, and the node queues one job for it.
The node runs no worker here (the pipeline on P001 takes a minute on this machine): the slow compose test
(test_images.py) sends P001 through the same script to a done job and results back in Orthanc."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.export.peers import P001, Orthanc, wait_for
from tests.node.index import query
from tests.node_process import REPO, NodeProcess

ROUTING_SCRIPT = REPO / "deploy" / "orthanc" / "route-ct-to-dicom-node.lua"
ROUTED_SECONDS = 60  # StableAge, then 148 instances over one association

if not P001.is_dir():
    pytest.skip(f"test data {P001} missing", allow_module_level=True)


def test_orthanc_routes_a_stable_ct_series_to_the_node_which_queues_it_once(tmp_path: Path) -> None:
    node = NodeProcess(tmp=tmp_path / "node", settings={"jobs": {"workers": 0, "settle_seconds": 1.0, "poll_seconds": 0.2}})
    node.tmp.mkdir()
    pacs = Orthanc(tmp_path / "orthanc")
    # The modality name the script sends to ("clara", as in deploy/orthanc/dicom-node.json), a short StableAge.
    pacs.add_modality("clara", node.ae, node.port)
    pacs.config |= {"LuaScripts": [str(ROUTING_SCRIPT)], "StableAge": 1}
    try:
        node.start()
        pacs.start()
        series_uid = pacs.load_series(P001)
        files = len(list(P001.glob("*.dcm")))
        wait_for(lambda: query(node.data_dir, "SELECT id FROM job"), ROUTED_SECONDS, "the routed series' job", 0.2)
        time.sleep(3)  # a second stable-series event, or a resend, would show now
        assert query(node.data_dir, "SELECT series_instance_uid, instance_count FROM series") == [(series_uid, files)]
        assert query(node.data_dir, "SELECT state, instance_count FROM job") == [("queued", files)]
        associations = query(node.data_dir, "SELECT calling_ae, instances_received, state FROM association")
        assert associations == [("ORTHANC", files, "released")], "the whole series in one association from Orthanc"
        assert f"routing CT series {pacs.lookup(series_uid, 'Series')} to dicom-node" in (pacs.root / "orthanc.log").read_text()
    finally:
        pacs.stop(signal.SIGKILL)
        node.stop()
