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
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


run_migrations_online()
