"""Alembic environment: the URL comes from the node (`dicom-node db upgrade`), never from a hand-edited ini."""

from alembic import context
from sqlalchemy import text

from dicom_node.store.db import make_engine
from dicom_node.store.models import Base

config = context.config
target_metadata = Base.metadata
# Receivers and workers starting together on a new PostgreSQL (compose, a Helm release) would each create the schema
# and all but one fail ("duplicate key ... alembic_version"): one upgrades at a time, holding this advisory lock for
# its transaction; the next then finds the schema at head. SQLite serialises writers itself.
MIGRATION_LOCK_KEY = 0x6469636F6D  # "dicom"


def run_migrations_online() -> None:
    """On SQLite, foreign keys are not enforced while the migrations run and every reference is checked after them:
    a batch migration rebuilds a table by copying, dropping and renaming it, and dropping a table that other rows
    reference fails while enforcement is on (SQLite's own procedure for schema changes). The pragma takes effect
    only outside a transaction: it is set before the migrations' one begins."""
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()):
                raise RuntimeError(f"the migrated index has rows whose references are broken (table, rowid, parent): {broken[:10]}")
    engine.dispose()


run_migrations_online()
