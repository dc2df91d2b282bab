"""Another revision's code beside the working tree's, for before/after figures measured in one run."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def baseline_code(revision: str) -> Iterator[Path]:
    """The repository's files at `revision`, in a temporary folder (or `revision` itself, if it is a folder of code).

    Run a node from it with `NodeProcess(code=...)` (tests/node_process.py).
    """
    if Path(revision, "dicom_node").is_dir():
        yield Path(revision).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as folder:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)
