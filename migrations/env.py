"""Alembic environment: the URL comes from the node (`dicom-node db upgrade`), never from a hand-edited ini."""

from alembic import context
from sqlalchemy import pool

from dicom_node.store.db import make_engine
from dicom_node.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
