"""identifiers whole: UID and ID columns hold 512 characters, so nothing is cut to 64 and merged

Two instances whose UIDs differed after character 64 were indexed as one (an
acknowledged instance lost); patients, studies and series likewise. Widening a
varchar is a catalogue change on PostgreSQL; SQLite recreates the tables.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

WIDENED = {
    'patient': {'patient_id': 64},
    'study': {'study_instance_uid': 64, 'accession_number': 16},
    'series': {'series_instance_uid': 64},
    'instance': {'sop_instance_uid': 64, 'sop_class_uid': 64, 'transfer_syntax_uid': 64},
    'export': {'sop_instance_uid': 64, 'sop_class_uid': 64},
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in columns.items():
                batch_op.alter_column(column, existing_type=sa.String(length=length), type_=sa.String(length=512), existing_nullable=False)


def downgrade() -> None:
    """Narrows the columns again: fails on PostgreSQL if a longer value was stored since (nothing is cut silently)."""
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in columns.items():
                batch_op.alter_column(column, existing_type=sa.String(length=512), type_=sa.String(length=length), existing_nullable=False)
