"""What the HTTP app works with, handed in by whoever builds it (the node, or a test).

The app never opens its own database or reads the configuration file: the node
passes the same session factory and settings its other threads use, and tests
pass theirs, so the API always shows exactly the database the node writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.config import Config
from dicom_node.peer_memory import PeerMemory
from dicom_node.store.config_store import ConfigStore

ReadinessHook = Callable[[], None]
"""Raises (with a message saying why) when the thing it checks is not ready; e.g. the Triton server."""


@dataclass
class WebContext:
    config: Config
    sessions: sessionmaker[Session]
    data_dir: Path
    readiness_hooks: dict[str, ReadinessHook] = field(default_factory=dict)
    # What STOW-RS bodies draw on: the node passes the share its associations use too; by default this process's share.
    peer_memory: PeerMemory | None = None
    # The run-time configuration's entities (/api/config); by default over `sessions`, changes audited as the node does.
    config_store: ConfigStore | None = None

    def __post_init__(self) -> None:
        if self.peer_memory is None:
            self.peer_memory = PeerMemory.share(self.config.dicom.peer_memory_mb, self.config.dicom.receive_processes)
        if self.config_store is None:
            from dicom_node.live_config import config_store  # it imports the web's audit log

            self.config_store = config_store(self.config, self.sessions)


def get_context(request: Request) -> WebContext:
    return request.app.state.context  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """One read session per request, closed when the response is sent."""
    with get_context(request).sessions() as session:
        yield session
