"""Attacks kept up: 400 MiB pushed at the node behind 4 GiB claims, and (slow) thousands of connections and minutes
of streaming, while allowed AEs keep echoing and storing.

Memory is the node's VmRSS from /proc/<pid>/status; it must not grow by 20 MB
however much the attacker sends.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.hostile.conftest import HostileNode
from tests.hostile.peer import Flood, RawPeer, pdu
from tests.hostile.test_connections import FOUR_GIB, MEMORY_GROWTH_KB, REQUEST, serves_during


def push_behind_claims(node: HostileNode, total: int, inside: bool, seconds: float = 0.0) -> int:
    """Open connection after connection, each claiming a 4 GiB PDU (after associating if `inside`) and streaming
    until the node cuts it, until `total` bytes were taken by the node (and at least `seconds` passed)."""
    taken, started = 0, time.monotonic()
    while taken < total or time.monotonic() - started < seconds:
        with RawPeer(node.port) as peer:
            if inside:
                peer.associate("INSIDER")
                peer.send(pdu(0x04, b"", length=FOUR_GIB))
            else:
                peer.send(pdu(0x01, b"", length=FOUR_GIB))
            taken += peer.stream(64 * 2**20)
    return taken


@pytest.mark.parametrize("inside", [False, True], ids=["before-association", "inside-association"])
def test_400_mib_behind_4_gib_claims_leave_memory_flat(node: HostileNode, tmp_path: Path, inside: bool) -> None:
    before = node.status()["VmRSS"]
    taken = push_behind_claims(node, (400 if not inside else 100) * 2**20, inside)
    grown = node.status()["VmRSS"] - before
    assert grown < MEMORY_GROWTH_KB, f"node memory grew by {grown} kB after {taken / 2**20:.0f} MiB"
    node.serves(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("inside", [False, True], ids=["before-association", "inside-association"])
def test_minutes_of_streaming_behind_4_gib_claims(node: HostileNode, tmp_path: Path, inside: bool) -> None:
    before = node.status()["VmRSS"]
    taken = push_behind_claims(node, 400 * 2**20, inside, seconds=120)
    grown = node.status()["VmRSS"] - before
    assert grown < MEMORY_GROWTH_KB, f"node memory grew by {grown} kB after {taken / 2**20:.0f} MiB"
    node.serves(tmp_path)


@pytest.mark.slow
def test_thousands_of_hostile_connections(node: HostileNode, tmp_path: Path) -> None:
    """Garbage, half requests and silent sockets from two hosts, reopened for a minute (thousands of connections):
    every few seconds an allowed AE echoes and stores; threads and memory stay bounded."""
    before = node.status()["VmRSS"]
    floods = [
        Flood(node.port, 300, b"\x99" * 64, interval=0.2),
        Flood(node.port, 100, REQUEST[:40], source="127.0.0.3"),
        Flood(node.port, 300, b"", source="127.0.0.4", interval=0.2),
    ]
    for flood in floods:
        flood.__enter__()
    try:
        started, rounds = time.monotonic(), 0
        while time.monotonic() - started < 60:
            rounds += 1
            serves_during(node, tmp_path / f"round{rounds}")
            time.sleep(2)
    finally:
        for flood in floods:
            flood.__exit__()
    assert sum(flood.opened for flood in floods) > 3000
    grown = node.status()["VmRSS"] - before
    assert grown < MEMORY_GROWTH_KB, f"node memory grew by {grown} kB"
    node.serves(tmp_path / "after")
