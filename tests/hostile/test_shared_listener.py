"""Front doors sharing one listening socket (receiving processes) spread new associations over the idle ones."""

from __future__ import annotations

import time

from pynetdicom import AE

from dicom_node.net.frontdoor import DoorRules, open_front_door
from dicom_node.peer_memory import PeerMemory

VERIFICATION = "1.2.840.10008.1.1"
RULES = DoorRules(handshake_timeout=2.0, max_pending=64, max_message_bytes=1 << 20, peer_memory=PeerMemory(64 << 20), shared_listener=True)


def _door_ae() -> AE:
    ae = AE("CLARA")
    ae.add_supported_context(VERIFICATION)
    return ae


def test_a_busy_door_leaves_a_new_association_to_an_idle_one() -> None:
    """Two doors on one socket, as two receiving processes have: the second association goes to the door that has none,
    whichever door took the first (one that took every connection it found would take both, half the time)."""
    first = open_front_door(_door_ae(), ("127.0.0.1", 0), [], RULES)
    second = open_front_door(_door_ae(), ("127.0.0.1", 0), [], RULES, listener=first.socket)
    port = first.server_address[1]
    sender = AE("MODALITY")
    sender.add_requested_context(VERIFICATION)
    associations = []
    try:
        for _ in range(2):
            assoc = sender.associate("127.0.0.1", port, ae_title="CLARA")
            assert assoc.is_established
            associations.append(assoc)
            deadline = time.monotonic() + 5
            while len(first.active_associations) + len(second.active_associations) < len(associations):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        assert (len(first.active_associations), len(second.active_associations)) == (1, 1)
    finally:
        for assoc in associations:
            assoc.release()
        first.shutdown()
        second.shutdown()


def test_a_door_whose_process_runs_a_job_leaves_a_new_association_to_an_idle_one() -> None:
    """The node's own process shares its interpreter lock with the pipeline: while a job runs, it is busy too."""
    for _ in range(3):  # whichever door wakes first: the one running a job must leave the association to the other
        working = open_front_door(_door_ae(), ("127.0.0.1", 0), [], RULES, other_work=lambda: 1)
        idle = open_front_door(_door_ae(), ("127.0.0.1", 0), [], RULES, listener=working.socket)
        sender = AE("MODALITY")
        sender.add_requested_context(VERIFICATION)
        assoc = sender.associate("127.0.0.1", working.server_address[1], ae_title="CLARA")
        try:
            assert assoc.is_established
            deadline = time.monotonic() + 5
            while not (working.active_associations or idle.active_associations):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert (len(working.active_associations), len(idle.active_associations)) == (0, 1)
        finally:
            assoc.release()
            working.shutdown()
            idle.shutdown()
