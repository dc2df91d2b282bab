"""leases: claimed jobs, exports and open associations carry a lease that their owner renews

A process that dies stops renewing; another process takes its work over once
the lease has run out, instead of a restarting node "recovering" everything it
finds (which, with several nodes on one database, took work from live ones).
`cluster_setting` holds the shared-storage token that every process sharing
the database must find in its data directory.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_job_lease_until'), ['lease_until'], unique=False)
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=128), nullable=False, server_default=''))
    with op.batch_alter_table('association', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(), nullable=True))
    op.create_table('cluster_setting',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('cluster_setting')
    with op.batch_alter_table('association', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
    with op.batch_alter_table('export', schema=None) as batch_op:
        batch_op.drop_column('owner')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_lease_until'))
        batch_op.drop_column('lease_until')
