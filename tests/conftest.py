from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dicom_node.store.db import make_engine, make_sessionmaker, upgrade
from tests.node_process import node_factory, stop_the_nodes_a_test_left_running  # noqa: F401  (fixtures shared by all test packages)
from tests.processed_node import processed_p001  # noqa: F401  (one node that processed P001, for the whole session)


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a new SQLite index at the newest schema, where a node with data dir `tmp_path` keeps it."""
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()
