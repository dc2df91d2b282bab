"""The run-time configuration's entities in the database: seeded from the file, changed over REST and the CLI.

Precedence (docs/operations.md, "Run-time configuration"): the configuration file (with the environment and
the command-line flags) adds the called AEs, sources and destinations the database has never had, at each
start; for every entity the database has, or had and was removed, the database wins and the file's version is
ignored. So a first start seeds the database from the file, a destination added to the file later still
arrives, and nothing the file says undoes a change made over REST or the CLI. `dicom-node config export`
writes the database's configuration back as TOML.

Each change bumps the one-row revision in its own transaction, which every process watches
(`live_config.py`), and wakes them (`Wakeups`, channel "config": NOTIFY on PostgreSQL). Each change is
handed to `audit` (who, when, before, after) once committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Config
from dicom_node.config_entities import NOUNS, Entities, Entity, Kind, key, public
from dicom_node.store.models import ConfigEntity, ConfigRevision, Export, utcnow
from dicom_node.store.wakeups import Wakeups

log = logging.getLogger(__name__)

Action = Literal["add", "update", "remove"]


class ConfigConflict(Exception):
    """The change contradicts what is there (REST: 409)."""


class PendingExports(ConfigConflict):
    """A destination still has exports to send; removing it needs `force` (they then fail with that reason)."""

    def __init__(self, name: str, count: int) -> None:
        self.count = count
        super().__init__(f"destination {name} has {count} pending export(s): remove it with force (--force) to fail them")


class NotConfigured(LookupError):
    """No such entity (REST: 404)."""


@dataclass(frozen=True)
class Change:
    """One committed change, as the audit log records it (secrets redacted)."""

    kind: Kind
    name: str
    action: Action
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    who: str
    at: datetime

    def audit_entry(self) -> dict[str, Any]:
        return {
            "time": self.at.isoformat(timespec="milliseconds") + "+00:00",
            "identity": self.who,
            "event": "config",
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "before": None if self.before is None else public(self.kind, self.before),
            "after": None if self.after is None else public(self.kind, self.after),
        }

    def text(self) -> str:
        done = {"add": "added", "update": "updated", "remove": "removed"}[self.action]
        return f"{NOUNS[self.kind]} {self.name} {done} by {self.who}"


class ConfigStore:
    def __init__(self, sessions: sessionmaker[Session], wakeups: Wakeups | None = None, audit: Callable[[Change], None] | None = None) -> None:
        self._sessions = sessions
        self.wakeups = wakeups if wakeups is not None else Wakeups()
        self._audit = audit

    def revision(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(ConfigRevision.revision).where(ConfigRevision.id == 1)) or 0)

    def load(self) -> tuple[int, Entities]:
        """The revision and the entities in force, read in one transaction."""
        entities = Entities()
        with self._sessions() as session:
            revision = int(session.scalar(select(ConfigRevision.revision).where(ConfigRevision.id == 1)) or 0)
            rows = session.scalars(select(ConfigEntity).where(ConfigEntity.removed_at.is_(None)).order_by(ConfigEntity.id))
            for row in rows:
                entities.specs[row.kind][row.name] = dict(row.spec)  # type: ignore[index]
        return revision, entities

    def seed(self, config: Config, who: str) -> list[Change]:
        """Add the entities `config` has and the database has never had (see the module's docstring)."""
        wanted = Entities.from_config(config)
        for attempt in range(3):  # processes starting together on one database: the loser finds the winner's rows
            try:
                return self._commit(lambda session: self._seed_in(session, wanted, who))
            except IntegrityError:
                if attempt == 2:
                    raise
        return []

    def _seed_in(self, session: Session, wanted: Entities, who: str) -> list[Change]:
        known = {(kind, name) for kind, name in session.execute(select(ConfigEntity.kind, ConfigEntity.name))}
        changes = []
        for kind, specs in wanted.specs.items():
            for name, spec in specs.items():
                if (kind, name) not in known:
                    changes.append(self._write(session, kind, name, None, spec, who))
        return changes

    def add(self, kind: Kind, entity: Entity, who: str) -> Change:
        name = key(kind, entity)
        spec = entity.model_dump(mode="json")

        def add_in(session: Session) -> list[Change]:
            row = self._row(session, kind, name)
            if row is not None and row.removed_at is None:
                raise ConfigConflict(f"{NOUNS[kind]} {name} exists already (update it, or remove it first)")
            return [self._write(session, kind, name, None, spec, who)]

        return self._commit(add_in)[0]

    def update(self, kind: Kind, name: str, entity: Entity, who: str) -> Change:
        if key(kind, entity) != name:
            raise ConfigConflict(f"{NOUNS[kind]} {name} cannot be renamed to {key(kind, entity)}: add the new one, then remove this one")
        spec = entity.model_dump(mode="json")

        def update_in(session: Session) -> list[Change]:
            return [self._write(session, kind, name, dict(self._live(session, kind, name).spec), spec, who)]

        return self._commit(update_in)[0]

    def remove(self, kind: Kind, name: str, who: str, force: bool = False) -> Change:
        """Remove an entity. The last called AE and the last source cannot go (no AE: the node hears nothing; no
        source: any calling AE may send). A destination with pending exports needs `force`; they then fail."""

        def remove_in(session: Session) -> list[Change]:
            row = self._live(session, kind, name)
            if kind in ("ae", "source"):
                others = session.scalar(
                    select(func.count()).select_from(ConfigEntity).where(ConfigEntity.kind == kind, ConfigEntity.removed_at.is_(None), ConfigEntity.name != name)
                )
                if not others:
                    why = "the node would accept no association" if kind == "ae" else "an empty list of sources lets any calling AE send"
                    raise ConfigConflict(f"{NOUNS[kind]} {name} is the last one and cannot be removed ({why}): add another first")
            if kind == "destination":
                self._fail_exports(session, name, who, force)
            return [self._write(session, kind, name, dict(row.spec), None, who)]

        return self._commit(remove_in)[0]

    def _fail_exports(self, session: Session, name: str, who: str, force: bool) -> None:
        pending = Export.destination == name, Export.state.in_(("pending", "sending"))
        count = int(session.scalar(select(func.count()).select_from(Export).where(*pending)) or 0)
        if count and not force:
            raise PendingExports(name, count)
        if count:  # those being sent now finish their attempt; the sender of a removed destination then stops
            reason = f"destination {name} was removed by {who}"
            session.execute(update(Export).where(Export.destination == name, Export.state == "pending").values(state="failed", last_error=reason))
            log.warning("%s: %d pending export(s) failed", reason, count)

    @staticmethod
    def _row(session: Session, kind: Kind, name: str) -> ConfigEntity | None:
        return session.scalars(select(ConfigEntity).where(ConfigEntity.kind == kind, ConfigEntity.name == name)).one_or_none()

    def _live(self, session: Session, kind: Kind, name: str) -> ConfigEntity:
        row = self._row(session, kind, name)
        if row is None or row.removed_at is not None:
            raise NotConfigured(f"no {NOUNS[kind]} {name}")
        return row

    def _write(self, session: Session, kind: Kind, name: str, before: dict[str, Any] | None, after: dict[str, Any] | None, who: str) -> Change:
        now = utcnow()
        row = self._row(session, kind, name)
        if row is None:
            row = ConfigEntity(kind=kind, name=name)
            session.add(row)
        if after is not None:
            row.spec = after
        row.removed_at = now if after is None else None
        row.updated_at, row.updated_by = now, who[:128]
        session.flush()  # a duplicate from a concurrent writer fails here, inside the transaction
        action: Action = "remove" if after is None else ("add" if before is None else "update")
        return Change(kind, name, action, before, after, who, now)

    def _commit(self, changes_in: Callable[[Session], list[Change]]) -> list[Change]:
        """Run `changes_in` in one transaction that also bumps the revision (first: it serialises writers) and wakes
        every process once committed; then audit each change."""
        with self._sessions() as session:  # closed on an error: rolled back
            session.execute(update(ConfigRevision).where(ConfigRevision.id == 1).values(revision=ConfigRevision.revision + 1))
            changes = changes_in(session)
            if not changes:
                session.rollback()
                return []
            self.wakeups.notify_in(session, "config")
            session.commit()
        for change in changes:
            log.info("configuration: %s", change.text())
            if self._audit is not None:
                self._audit(change)
        return changes
