"""Keyed, repeatable pseudonyms: the same original always maps to the same replacement on one node.

HMAC-SHA256 under a secret kept in the data dir, so a study sent twice, its results and later studies of the same
patient stay linked at the destination, and nobody without the secret can compute or test a mapping. The mapping
itself is also kept in the index (`store/pseudonyms.py`) for re-identification on the node; it is never exported.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from dicom_node.store.files import fsync_dir
from dicom_node.store.pseudonyms import Pseudonym

log = logging.getLogger(__name__)

KEY_FILE = "deidentification.key"
KEY_BYTES = 32
_SEPARATOR = "\x1f"  # a unit separator keeps ("a", "bc") and ("ab", "c") apart


class KeyFileError(Exception):
    """The node's de-identification key is unusable (unreadable, malformed, or readable by others)."""


def node_key(data_dir: Path) -> bytes:
    """The node's secret: read from the data dir, or created there (mode 0600) on first use.

    A new key is written whole to a private temporary file and linked to its name, which fails if the name exists:
    processes sharing the data dir agree on one key, and none ever reads a half-written one. A key file that group or
    others may read is refused: whoever reads it can recompute every pseudonym.
    """
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        partial = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(KEY_BYTES) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.link(partial, path)
            fsync_dir(path.parent)  # the name must survive a crash: a new key would give new pseudonyms
            log.info("created the de-identification key %s (keep it: without it pseudonyms change)", path)
        except FileExistsError:
            pass  # another process created it first: theirs is the key
        finally:
            partial.unlink(missing_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is accessible to group or others (mode {stat.filemode(mode)}): chmod 600 it")
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{path} does not hold a {KEY_BYTES}-byte hex key")
    return key


class Pseudonyms:
    """The node's mappings under its key; `issued` collects what one object used, for the index."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.issued: dict[tuple[str, str], Pseudonym] = {}

    def _digest(self, kind: str, *parts: str) -> bytes:
        return hmac.new(self._key, _SEPARATOR.join((kind, *parts)).encode(), hashlib.sha256).digest()

    def _issue(self, kind: str, original: str, pseudonym: str) -> str:
        self.issued.setdefault((kind, original), Pseudonym(kind, original, pseudonym))
        return pseudonym

    def uid(self, original: str) -> str:
        """A "2.25." UID (PS3.5 B.2) from 128 bits of the keyed digest."""
        if not original:
            return original
        return self._issue("uid", original, f"2.25.{int.from_bytes(self._digest('uid', original)[:16], 'big')}")

    def patient_id(self, patient_id: str, issuer: str) -> str:
        """The pseudonymous Patient ID (also the Patient's Name sent): one per patient ID within its issuer."""
        original = f"{issuer}{_SEPARATOR}{patient_id}" if issuer else patient_id
        return self._issue("patient_id", original, "DN" + self._digest("patient_id", issuer, patient_id)[:8].hex().upper())

    def accession(self, accession: str) -> str:
        """An accession number (SH, 16 characters at most), empty for an empty one."""
        if not accession:
            return accession
        return self._issue("accession", accession, self._digest("accession", accession)[:8].hex().upper())

    def date_shift_days(self, patient_id: str, issuer: str, most: int) -> int:
        """Days every date of this patient moves back: 1..most, the same for all the patient's studies."""
        days = 1 + int.from_bytes(self._digest("date_shift", issuer, patient_id)[:4], "big") % most
        original = f"{issuer}{_SEPARATOR}{patient_id}" if issuer else patient_id
        self._issue("date_shift_days", original, str(days))
        return days
