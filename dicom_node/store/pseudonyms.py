"""The pseudonym table: what each pseudonym sent to a de-identified destination stands for.

Written by the export sender before the object goes out (so every pseudonym a destination holds can be traced
back), read by `dicom-node pseudonyms reidentify`; never exported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.models import PseudonymMapping

CHUNK = 500  # pairs per lookup: far within SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class Pseudonym:
    """One mapping, as recorded for re-identification: kind is uid, patient_id, accession or date_shift_days."""

    kind: str
    original: str
    pseudonym: str


class PseudonymStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, pseudonyms: Iterable[Pseudonym]) -> int:
        """Add the mappings not yet kept; return how many were added. Another process adding the same ones at
        the same moment makes the insert fail on the unique key: it is then repeated with what remains."""
        wanted = {(p.kind, p.original): p for p in pseudonyms}
        for _attempt in range(3):
            try:
                with self._sessions.begin() as session:
                    missing = self._missing(session, wanted)
                    session.add_all(PseudonymMapping(kind=p.kind, original=p.original, pseudonym=p.pseudonym) for p in missing)
                    return len(missing)
            except IntegrityError:
                continue
        raise RuntimeError("pseudonyms could not be recorded: the same ones kept being added concurrently")

    @staticmethod
    def _missing(session: Session, wanted: dict[tuple[str, str], Pseudonym]) -> list[Pseudonym]:
        keys = list(wanted)
        known: set[tuple[str, str]] = set()
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            rows = session.execute(
                select(PseudonymMapping.kind, PseudonymMapping.original).where(tuple_(PseudonymMapping.kind, PseudonymMapping.original).in_(chunk))
            )
            known.update((kind, original) for kind, original in rows)
        return [wanted[key] for key in keys if key not in known]

    def reidentify(self, pseudonym: str) -> list[Pseudonym]:
        """The originals a pseudonym stands for (one, unless a Patient ID and a UID collide), and for a patient the date shift."""
        with self._sessions() as session:
            found = [
                Pseudonym(row.kind, row.original, row.pseudonym)
                for row in session.scalars(select(PseudonymMapping).where(PseudonymMapping.pseudonym == pseudonym))
            ]
            patients = [p.original for p in found if p.kind == "patient_id"]
            if patients:
                found += [
                    Pseudonym(row.kind, row.original, row.pseudonym)
                    for row in session.scalars(
                        select(PseudonymMapping).where(PseudonymMapping.kind == "date_shift_days", PseudonymMapping.original.in_(patients))
                    )
                ]
        return found
