"""Alembic environment: the URL comes from the node (`dicom-node db upgrade`), never from a hand-edited ini."""

from alembic import context
from sqlalchemy import pool

from dicom_node.store.db import make_engine
from dicom_node.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # SQLite alters a table by rebuilding it (copy, drop, rename). With foreign keys enforced, dropping a
            # table that another table's rows reference fails: an index holding data could not be upgraded. They are
            # off while the migrations run (the pragma only takes effect outside a transaction) and checked after.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migrated index has rows whose foreign keys point nowhere: {broken[:10]}")
    engine.dispose()


run_migrations_online()
