"""The DICOM files a done job's stored result names (the job row's `result`, `worker.result_summary`).

In the order `ResultFiles.dicom()` sends them: SEG (the SR references it), SR,
summary page, key images. Whoever serves or re-sends a job's results reads them
here, so that a kind of result added later reaches all of them (the summary
page once reached `exports resend` only, and never DICOMweb). A light module:
the CLI and the web app read it without importing highdicom.
"""

from __future__ import annotations

from typing import Any


def result_dicom_files(result: dict[str, Any] | None) -> list[str]:
    """Paths relative to the data dir, as the result stores them; kinds a result lacks are left out."""
    result = result or {}
    files = result.get("files", {})
    names = [files.get("seg"), files.get("sr"), result.get("summary"), *result.get("secondary_capture", [])]
    return [name for name in names if name]
