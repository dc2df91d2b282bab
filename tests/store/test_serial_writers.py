"""The receive path's writers take turns on an SQLite index: across processes, across threads, and past a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dicom_node.store.db import make_engine
from dicom_node.store.rawsql import RawConnections, SerialWriters
from tests.node_process import REPO

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from dicom_node.store.rawsql import SerialWriters
    with SerialWriters(Path(sys.argv[1])).turn():
        print("holding", flush=True)
        sys.stdin.readline()  # until the test says so (or kills this process)
    """
)


def _holder(index: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(index)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    return holder


def _waiting_turn(writers: SerialWriters) -> threading.Event:
    """Takes a turn in a thread; the event is set once it has it."""
    got = threading.Event()

    def take() -> None:
        with writers.turn():
            got.set()

    threading.Thread(target=take, daemon=True).start()
    return got


@pytest.mark.parametrize("ends", ["releases", "is killed"])
def test_a_writer_waits_while_another_process_holds_the_turn_and_gets_it_once_it_ends(tmp_path: Path, ends: str) -> None:
    index = tmp_path / "index.sqlite3"
    holder = _holder(index)
    writers = SerialWriters(index)
    try:
        got = _waiting_turn(writers)
        assert not got.wait(0.5), "took the turn while another process held it"
        assert holder.stdin is not None
        if ends == "releases":
            holder.stdin.write("\n")
            holder.stdin.flush()
        else:
            holder.kill()
        assert got.wait(5), f"no turn after the other process {ends}"
    finally:
        holder.kill()
        holder.wait()
        writers.close()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    writers = SerialWriters(tmp_path / "index.sqlite3")
    inside, most = [0], [0]

    def write() -> None:
        for _ in range(20):
            with writers.turn():
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                time.sleep(0.001)
                inside[0] -= 1

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writers.close()
    assert most[0] == 1


def test_the_receive_path_takes_its_turn_beside_the_index(tmp_path: Path) -> None:
    """An index write through the raw connections waits for the turn that another process holds."""
    index = tmp_path / "index.sqlite3"
    engine = make_engine(f"sqlite:///{index}")
    raw = RawConnections(engine)
    holder = _holder(index)
    done = threading.Event()

    def write() -> None:
        raw.run(lambda cursor: cursor.execute("CREATE TABLE t (x INTEGER)"), writes=True)
        done.set()

    try:
        threading.Thread(target=write, daemon=True).start()
        assert not done.wait(0.5)
        holder.kill()
        assert done.wait(5)
    finally:
        holder.kill()
        holder.wait()
        raw.close()
        engine.dispose()
