"""ids in URLs and logs are never reused: SQLite tables get AUTOINCREMENT

Without it SQLite gives a new row the highest rowid + 1, so after retention deletes the newest job its id went
to the next series' job, and an access-log path naming job 2 could point at two patients. PostgreSQL's sequences
never go back: nothing to do there. The instance table keeps its ids (they appear in no URL or log, and
rebuilding it would copy the whole index).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# Referenced tables before the tables that reference them does not matter: migrations/env.py turns SQLite's
# foreign key enforcement off around the migrations and checks every reference afterwards.
TABLES = ('patient', 'study', 'series', 'association', 'job', 'export')


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
