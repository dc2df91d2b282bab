"""The pipeline's time and memory targets on a 512x512x300 phantom (slow: run with -m slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_512x512x300_phantom_meets_time_and_memory_targets():
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pipeline"), "--no-p001"], cwd=REPO, capture_output=True, text=True
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
