"""inference requests (studies processed on request from a PACS) and the retrieve that brought an association's instances

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'inference_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('transaction_id', sa.String(length=512), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('pipelines', sa.JSON(), nullable=False),
        sa.Column('destinations', sa.JSON(), nullable=False),
        sa.Column('force', sa.Boolean(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=128), nullable=False),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('partial', sa.Boolean(), nullable=False),
        sa.Column('errors', sa.JSON(), nullable=False),
        sa.Column('retrieve_started_at', sa.DateTime(), nullable=True),
        sa.Column('retrieve_ended_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('transaction_id'),
    )
    op.create_index(op.f('ix_inference_request_state'), 'inference_request', ['state'])
    op.create_index(op.f('ix_inference_request_next_attempt_at'), 'inference_request', ['next_attempt_at'])
    op.create_index(op.f('ix_inference_request_created_at'), 'inference_request', ['created_at'])
    op.create_table(
        'inference_request_series',
        sa.Column('request_fk', sa.Integer(), nullable=False),
        sa.Column('series_instance_uid', sa.String(length=512), nullable=False),
        sa.Column('study_instance_uid', sa.String(length=512), nullable=False),
        sa.Column('modality', sa.String(length=16), nullable=False),
        sa.Column('sop_class_uids', sa.JSON(), nullable=False),
        sa.Column('expected', sa.Integer(), nullable=False),
        sa.Column('present_before', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('after_job', sa.Integer(), nullable=False),
        sa.Column('job_fk', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['job_fk'], ['job.id']),
        sa.ForeignKeyConstraint(['request_fk'], ['inference_request.id']),
        sa.PrimaryKeyConstraint('request_fk', 'series_instance_uid'),
    )
    op.create_index(op.f('ix_inference_request_series_series_instance_uid'), 'inference_request_series', ['series_instance_uid'])
    with op.batch_alter_table('association', schema=None) as batch_op:
        batch_op.add_column(sa.Column('move_originator_ae', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('move_message_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('association', schema=None) as batch_op:
        batch_op.drop_column('move_message_id')
        batch_op.drop_column('move_originator_ae')
    op.drop_index(op.f('ix_inference_request_series_series_instance_uid'), table_name='inference_request_series')
    op.drop_table('inference_request_series')
    op.drop_index(op.f('ix_inference_request_created_at'), table_name='inference_request')
    op.drop_index(op.f('ix_inference_request_next_attempt_at'), table_name='inference_request')
    op.drop_index(op.f('ix_inference_request_state'), table_name='inference_request')
    op.drop_table('inference_request')
