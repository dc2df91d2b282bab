"""The de-identified copy of an export, made just before it is sent and removed once it is answered.

The outbox row keeps pointing at the stored file, which is never changed: a retry (or another process after a
crash) makes the copy again, and since the mapping is keyed and the copy a pure function of the file and the
profile, it is the same object, byte for byte, each time. The pseudonyms the copies of a batch use are recorded
in the index, in one transaction, before the batch goes out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Destination
from dicom_node.deidentify.deidentifier import Deidentifier
from dicom_node.deidentify.pseudonyms import Pseudonyms, node_key
from dicom_node.store.pseudonyms import Pseudonym, PseudonymStore

log = logging.getLogger(__name__)

COPIES_DIR = "deidentified"


@dataclass(frozen=True)
class DeidentifiedCopy:
    path: Path
    pseudonyms: list[Pseudonym]  # what the copy uses: to be recorded before it is sent


class DeidentifiedCopies:
    def __init__(self, data_dir: Path, sessions: sessionmaker[Session]) -> None:
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / COPIES_DIR
        self.store = PseudonymStore(sessions)
        self._key: bytes | None = None

    def make(self, dest: Destination, source: Path, export_id: int) -> DeidentifiedCopy:
        """Write the de-identified copy of `source` for `dest`; NotDeidentifiable or KeyFileError say why not."""
        if self._key is None:
            self._key = node_key(self.data_dir)
        ds = dcmread(source)
        original_uid = str(ds.get("SOPInstanceUID", ""))
        pseudonyms = Pseudonyms(self._key)
        Deidentifier(dest.deidentification, pseudonyms).apply(ds)
        self.dir.mkdir(exist_ok=True)
        path = self.dir / f"{export_id}.dcm"
        partial = path.with_suffix(f".{os.getpid()}.part")
        ds.save_as(partial, enforce_file_format=True)
        partial.replace(path)
        log.info("export %d to %s: %s de-identified as %s", export_id, dest.name, original_uid, ds.get("SOPInstanceUID", ""))
        return DeidentifiedCopy(path, list(pseudonyms.issued.values()))

    def record(self, copies: Iterable[DeidentifiedCopy]) -> int:
        """Record the pseudonyms of these copies in the index (one transaction); SQLAlchemyError if it cannot."""
        return self.store.record(pseudonym for copy in copies for pseudonym in copy.pseudonyms)

    def remove(self, path: Path) -> None:
        if path.parent == self.dir:
            path.unlink(missing_ok=True)
