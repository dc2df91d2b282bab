"""Leases: how several processes share jobs and exports without stepping on each other.

A process claims a job or an export row by writing its owner name and a lease
(`lease_until`; for exports `next_attempt_at` while `sending`) in the same
compare-and-set that changes the row's state. While it works it renews the
leases of everything it owns. A process that dies stops renewing: once the
lease has run out, any other process may take the row over (the claim query
treats an expired lease like a queued row). There is no start-up step that
"recovers" rows by node name, which with several nodes on one database took
work away from live processes.

Owner names are `<node name>/<host>/<pid>`, so a restarted process never
mistakes the claims of its previous life for its own.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.logs import RepeatingFailure
from dicom_node.store.models import Association, Export, Job, utcnow

log = logging.getLogger(__name__)


def process_owner(node_name: str) -> str:
    """This process's owner name: unique across hosts and restarts."""
    return f"{node_name}/{socket.gethostname()}/{os.getpid()}"


class LeaseKeeper:
    """Renews the leases of the jobs, exports and open associations this process owns."""

    def __init__(
        self, sessions: sessionmaker[Session], node_name: str, owner: str, job_lease_seconds: float, export_lease_seconds: float
    ) -> None:
        self._sessions = sessions
        self.node_name = node_name
        self.owner = owner
        self.job_lease = timedelta(seconds=job_lease_seconds)
        self.export_lease = timedelta(seconds=export_lease_seconds)

    @property
    def interval(self) -> float:
        """Renew three times per lease: two renewals may fail (a database hiccup) before the lease is lost."""
        return min(self.job_lease, self.export_lease).total_seconds() / 3

    def renew(self, now: datetime | None = None) -> tuple[int, int, int]:
        """Extend every lease this process holds; return (jobs, exports, associations) renewed."""
        now = now or utcnow()
        with self._sessions.begin() as session:
            jobs = session.execute(
                update(Job)
                .where(Job.state == "running", Job.worker.startswith(f"{self.owner}/", autoescape=True))
                .values(lease_until=now + self.job_lease)
            ).rowcount
            exports = session.execute(
                update(Export).where(Export.state == "sending", Export.owner == self.owner).values(next_attempt_at=now + self.export_lease)
            ).rowcount
            associations = session.execute(
                update(Association)
                .where(Association.state == "open", Association.node == self.node_name)
                .values(lease_until=now + self.job_lease)
            ).rowcount
        return jobs, exports, associations

    def run(self, stopping: threading.Event) -> None:
        # The database is away: said once, and once when it is back.
        failures = RepeatingFailure(log, f"renewing the leases of {self.owner} (others take its work over if this lasts)")
        while not stopping.wait(self.interval):
            failures.run(self.renew)
