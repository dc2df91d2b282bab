"""series remember their last normal release (an aborted send holds them back); jobs say why their input may be
incomplete; result-only series get their received time

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_released_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('input_incomplete', sa.Text(), nullable=False, server_default=''))
    # Series that only ever received ignored classes (results forwarded back, non-images) had no received time,
    # so retention never deleted them; series received before this revision count as completed.
    op.execute(
        "UPDATE series SET last_received_at = (SELECT MAX(instance.received_at) FROM instance WHERE instance.series_fk = series.id) "
        "WHERE last_received_at IS NULL"
    )
    op.execute("UPDATE series SET last_released_at = last_received_at")


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('input_incomplete')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_column('last_released_at')
