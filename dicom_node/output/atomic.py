"""Write a file so that readers see either nothing or the whole file.

The export sender picks result files up from the output directory; a crash in
the middle of a write must not leave a truncated DICOM file that it would send.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write` on a temporary sibling of `path`, flush it to disk, then rename it to `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    """`write_atomically` for a UTF-8 text file."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
