"""pseudonyms sent to de-identified destinations, kept on the node for re-identification

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pseudonym',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('original', sa.String(length=512), nullable=False),
        sa.Column('pseudonym', sa.String(length=512), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'original', name='uq_pseudonym_kind_original'),
    )
    with op.batch_alter_table('pseudonym', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pseudonym_pseudonym'), ['pseudonym'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pseudonym', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pseudonym_pseudonym'))
    op.drop_table('pseudonym')
