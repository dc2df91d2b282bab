"""A sender that stops half-way: what a PACS or modality does when its connection drops mid-series."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian


def send_then_abort(port: int, files: list[Path], ae_title: str = "CLARA", calling: str = "HALFWAY") -> int:
    """C-STORE `files` over one association, then abort it instead of releasing; returns how many were stored."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established, "the node refused the association"
    stored = 0
    try:
        for path in files:
            status = assoc.send_c_store(pydicom.dcmread(path))
            stored += int(getattr(status, "Status", -1) == 0)
    finally:
        assoc.abort()
    return stored
