"""the Query/Retrieve SCP: results indexed like received instances; StudyTime and StudyID kept; the attributes C-FIND matches most often indexed

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'result_instance',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_fk', sa.Integer(), nullable=False),
        sa.Column('study_fk', sa.Integer(), nullable=False),
        sa.Column('series_instance_uid', sa.String(length=512), nullable=False),
        sa.Column('modality', sa.String(length=16), nullable=False),
        sa.Column('series_number', sa.Integer(), nullable=True),
        sa.Column('series_description', sa.String(length=64), nullable=False),
        sa.Column('sop_instance_uid', sa.String(length=512), nullable=False),
        sa.Column('sop_class_uid', sa.String(length=512), nullable=False),
        sa.Column('instance_number', sa.Integer(), nullable=True),
        sa.Column('transfer_syntax_uid', sa.String(length=512), nullable=False),
        sa.Column('path', sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(['job_fk'], ['job.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['study_fk'], ['study.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job_fk', 'sop_instance_uid', name='uq_result_instance_job_sop'),
    )
    with op.batch_alter_table('result_instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_instance_job_fk'), ['job_fk'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_instance_study_fk'), ['study_fk'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_instance_series_instance_uid'), ['series_instance_uid'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_instance_sop_instance_uid'), ['sop_instance_uid'], unique=False)
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.add_column(sa.Column('study_time', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('study_id', sa.String(length=16), nullable=False, server_default=''))
        batch_op.create_index(batch_op.f('ix_study_study_date'), ['study_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_accession_number'), ['accession_number'], unique=False)
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_modality'), ['modality'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_modality'))
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_accession_number'))
        batch_op.drop_index(batch_op.f('ix_study_study_date'))
        batch_op.drop_column('study_id')
        batch_op.drop_column('study_time')
    with op.batch_alter_table('result_instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_instance_sop_instance_uid'))
        batch_op.drop_index(batch_op.f('ix_result_instance_series_instance_uid'))
        batch_op.drop_index(batch_op.f('ix_result_instance_study_fk'))
        batch_op.drop_index(batch_op.f('ix_result_instance_job_fk'))
    op.drop_table('result_instance')
