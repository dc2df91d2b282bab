"""A small tmpfs for tests that need a disk of known size, or one that even root cannot write to."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(folder: Path, size_mb: int, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of `size_mb` on `folder` for the block; skip the test where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mb}m,mode=0755" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
