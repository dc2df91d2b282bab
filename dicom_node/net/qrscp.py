"""The Query/Retrieve SCP: C-FIND, C-MOVE and C-GET (Patient Root and Study Root) on the node's DICOM ports.

Who may: a calling AE (and host) of `dicom.allowed_sources` with
`query_retrieve = true`; for anyone else the association gets no Q/R context
(`scp.py`, logged with the reason), so nothing is answered. What: the received
instances and the results of done jobs, found in the index
(`store/catalogue.py`: no file is opened to answer a C-FIND). Where to: C-MOVE
sends only to a configured destination, by AE title (0xA801 otherwise; a
destination that de-identifies is not one: what it would get here is not
de-identified). Limits: `dicom.query_max_matches` matches per C-FIND (more:
0xA700, with a comment asking to narrow it),
`dicom.max_retrievals` C-MOVE/C-GET at once per receiving process (more:
0xA701). A C-CANCEL stops a C-FIND before its next match and a retrieve before
its next sub-operation (0xFE00).

pynetdicom runs the protocol (`QueryRetrieveServiceClass`): these handlers are
generators of its (status, identifier or data set) pairs. The C-STORE receive
path (`fastpath.py`) is untouched: binding these events changes nothing it
checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom import evt
from pynetdicom.presentation import PresentationContext, build_context
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Destination, DicomSettings
from dicom_node.net.scu import MAX_CONTEXTS, tls_args
from dicom_node.store.catalogue import LEVELS, UNINDEXED, Level, Query, StoredInstance, TooManyMatches, find, instances

log = logging.getLogger(__name__)

PATIENT_ROOT = {"FIND": "1.2.840.10008.5.1.4.1.2.1.1", "MOVE": "1.2.840.10008.5.1.4.1.2.1.2", "GET": "1.2.840.10008.5.1.4.1.2.1.3"}
STUDY_ROOT = {"FIND": "1.2.840.10008.5.1.4.1.2.2.1", "MOVE": "1.2.840.10008.5.1.4.1.2.2.2", "GET": "1.2.840.10008.5.1.4.1.2.2.3"}
QR_SOP_CLASSES = frozenset([*PATIENT_ROOT.values(), *STUDY_ROOT.values()])
_LEVELS_OF = {uid: LEVELS for uid in PATIENT_ROOT.values()} | {uid: LEVELS[1:] for uid in STUDY_ROOT.values()}

PENDING, CANCELLED = 0xFF00, 0xFE00
FIND_OUT_OF_RESOURCES = 0xA700
RETRIEVE_OUT_OF_RESOURCES = 0xA701  # C-MOVE/C-GET: unable to calculate the number of matches (refused before any sent)
UNABLE_TO_PROCESS = 0xC000
MAX_SUB_OPERATIONS = 65535  # the sub-operation counts are US: more instances cannot be retrieved in one request
# Keys a C-FIND response carries whatever the identifier holds, or fills itself
_CONTROL_KEYS = frozenset({"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability", "QueryRetrieveView"})
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


class BadIdentifier(ValueError):
    """The identifier cannot be answered (level missing or not of the model); the message says why."""


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


def read_identifier(identifier: Dataset, sop_class_uid: str) -> tuple[Query, list[str]]:
    """The query an identifier asks, and the keywords of its keys in their order (what each response returns)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    allowed = _LEVELS_OF.get(sop_class_uid, LEVELS)
    if level not in allowed:
        raise BadIdentifier(f"QueryRetrieveLevel {level or '(none)'!r} is not one of {', '.join(allowed)}")
    keys: dict[str, object] = {}
    returned: list[str] = []
    for element in identifier:
        keyword = element.keyword or keyword_for_tag(element.tag)
        if not keyword or keyword in _CONTROL_KEYS:
            continue
        returned.append(keyword)
        if element.VR != "SQ" and keyword not in UNINDEXED:  # sequence matching: returned empty (universal)
            keys[keyword] = element.value
    return Query.of(level, keys), returned  # type: ignore[arg-type]


def response(level: Level, returned: Sequence[str], values: dict[str, Any], our_ae: str) -> Dataset:
    """One C-FIND match as the requested keys (empty where the index has nothing), level and retrieve AE."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in returned:
        value = values.get(keyword)  # None: an empty element of the keyword's VR, whatever it is
        setattr(ds, keyword, [] if keyword.endswith("Sequence") else value)
    ds.RetrieveAETitle = our_ae
    ds.InstanceAvailability = "ONLINE"
    if any(isinstance(value, str) and not value.isascii() for value in values.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def store_contexts(found: Sequence[StoredInstance]) -> list[PresentationContext]:
    """For a C-MOVE's association: each class in each stored syntax (sent as stored), and the uncompressed ones
    (pynetdicom converts between them) for classes stored uncompressed; at most MAX_CONTEXTS."""
    pairs: dict[tuple[str, tuple[str, ...]], None] = {}
    for item in found:
        if UID(item.transfer_syntax_uid) in _UNCOMPRESSED:
            pairs[(item.sop_class_uid, tuple(_UNCOMPRESSED))] = None
        else:
            pairs[(item.sop_class_uid, (item.transfer_syntax_uid,))] = None
    return [build_context(sop_class, list(syntaxes)) for sop_class, syntaxes in list(pairs)[:MAX_CONTEXTS]]


class QueryRetrieveService:
    """The C-FIND, C-MOVE and C-GET handlers of one receiving process."""

    def __init__(
        self, settings: DicomSettings, sessions: sessionmaker[Session], data_dir: Path, destinations: Callable[[], Sequence[Destination]]
    ) -> None:
        """`destinations`: the configured destinations now (read per C-MOVE, so that a change applies at once)."""
        self.settings = settings
        self._sessions = sessions
        self._data_dir = data_dir
        self._destinations = destinations
        self._retrievals = threading.BoundedSemaphore(settings.max_retrievals)

    def may_query(self, calling_ae: str, host: str, called_ae: str) -> bool:
        return any(src.query_retrieve and src.admits(calling_ae, host, called_ae) for src in self.settings.allowed_sources)

    def handlers(self) -> list[tuple[Any, Callable[[evt.Event], Iterator[Any]]]]:
        return [(evt.EVT_C_FIND, self.on_find), (evt.EVT_C_MOVE, self.on_move), (evt.EVT_C_GET, self.on_get)]

    # C-FIND -----------------------------------------------------------------
    def on_find(self, event: evt.Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        peer = _peer(event)
        try:
            query, returned = read_identifier(event.identifier, str(event.request.AffectedSOPClassUID))
            with self._sessions() as session:
                matches = find(session, query, self.settings.query_max_matches)
        except BadIdentifier as exc:
            log.warning("C-FIND from %s refused: %s", peer, exc)
            yield _status(UNABLE_TO_PROCESS, str(exc)), None
            return
        except TooManyMatches as exc:
            log.warning("C-FIND from %s refused: %s", peer, exc)
            yield _status(FIND_OUT_OF_RESOURCES, str(exc)), None
            return
        log.info("C-FIND from %s at %s level: %d match(es)", peer, query.level, len(matches))
        our_ae = str(event.assoc.acceptor.ae_title).strip()
        for values in matches:
            if event.is_cancelled:
                log.info("C-FIND from %s cancelled", peer)
                yield CANCELLED, None
                return
            yield PENDING, response(query.level, returned, values, our_ae)

    # C-MOVE and C-GET ---------------------------------------------------------
    def _retrieve(self, event: evt.Event) -> list[StoredInstance]:
        query, _returned = read_identifier(event.identifier, str(event.request.AffectedSOPClassUID))
        with self._sessions() as session:
            return instances(session, query, self._data_dir, MAX_SUB_OPERATIONS)

    def move_destination(self, ae_title: str) -> Destination | None:
        """The configured destination a C-MOVE may send to under this AE title (None: 0xA801)."""
        for dest in self._destinations():
            if dest.ae_title == ae_title:
                if dest.deidentification.enabled:
                    log.warning("C-MOVE to %s refused: destination %s de-identifies, a C-MOVE would send identified data", ae_title, dest.name)
                    return None
                return dest
        return None

    def on_move(self, event: evt.Event) -> Iterator[Any]:
        peer, target = _peer(event), str(event.move_destination or "").strip()
        dest = self.move_destination(target)
        if dest is None:
            log.warning("C-MOVE from %s to %r refused: not a configured destination (0xA801)", peer, target)
            yield None, None
            return
        refusal, found = self._start(event)
        kwargs = {"contexts": store_contexts(found) or [build_context("1.2.840.10008.1.1")], "tls_args": tls_args(dest)}
        yield dest.host, dest.port, kwargs
        yield from self._sub_operations(event, refusal, found, f"C-MOVE from {peer} to {dest.name}")

    def on_get(self, event: evt.Event) -> Iterator[Any]:
        refusal, found = self._start(event)
        yield from self._sub_operations(event, refusal, found, f"C-GET from {_peer(event)}")

    def _start(self, event: evt.Event) -> tuple[Dataset | None, list[StoredInstance]]:
        """A retrieve slot and the instances to send, or the status refusing the retrieve (no slot, bad or too big a query)."""
        if not self._retrievals.acquire(blocking=False):
            return _status(RETRIEVE_OUT_OF_RESOURCES, f"{self.settings.max_retrievals} retrievals at once already: try later"), []
        try:
            return None, self._retrieve(event)
        except (BadIdentifier, TooManyMatches) as exc:
            self._retrievals.release()
            return _status(UNABLE_TO_PROCESS if isinstance(exc, BadIdentifier) else RETRIEVE_OUT_OF_RESOURCES, str(exc)), []

    def _sub_operations(self, event: evt.Event, refusal: Dataset | None, found: list[StoredInstance], what: str) -> Iterator[Any]:
        """The count, then a data set per instance (pynetdicom stores each and counts the outcome), or the refusal."""
        if refusal is not None:
            log.warning("%s refused: %s", what, refusal.ErrorComment)
            yield 1  # pynetdicom asks for the count before it takes a failure status
            yield refusal, None
            return
        log.info("%s: %d instance(s)", what, len(found))
        if not found:  # pynetdicom answers success and stops asking
            self._retrievals.release()
            yield 0
            return
        try:
            yield len(found)
            for item in found:
                if event.is_cancelled:
                    log.info("%s cancelled", what)
                    yield CANCELLED, None
                    return
                yield PENDING, dcmread(item.path)
        finally:
            self._retrievals.release()


def _peer(event: evt.Event) -> str:
    requestor = event.assoc.requestor
    return f"{str(requestor.ae_title).strip()}@{requestor.address}"
