"""The worker's start-up heap stays out of every job's garbage collections, without keeping start-up garbage."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.node_process import REPO


def test_start_up_objects_are_frozen_and_start_up_garbage_is_freed_first() -> None:
    script = textwrap.dedent(
        """
        import gc, weakref
        from dicom_node.memory import freeze_start_up_objects
        from dicom_node.output import highdicom_tables

        class Node:
            pass

        highdicom_tables.prepare()
        garbage = Node()
        garbage.itself = garbage  # a reference cycle: only a collection frees it
        gone = weakref.ref(garbage)
        del garbage
        frozen = freeze_start_up_objects()
        print(frozen, len(gc.get_objects()), gone() is None)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    frozen, still_collected, garbage_freed = done.stdout.split()
    assert int(frozen) > 100_000  # highdicom's tables alone are more
    assert int(still_collected) < 1_000  # what a full collection still walks
    assert garbage_freed == "True"
