"""patients by PatientID and IssuerOfPatientID; each study keeps the patient name it was received with

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The unique constraint on patient.patient_id was created unnamed: SQLite reflects it under this convention,
# PostgreSQL named it <table>_<column>_key.
NAMING = {"uq": "%(table_name)s_%(column_0_name)s_key"}


def upgrade() -> None:
    with op.batch_alter_table('patient', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('issuer', sa.String(length=512), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('names_differ', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_constraint('patient_patient_id_key', type_='unique')
        batch_op.create_unique_constraint('uq_patient_id_issuer', ['patient_id', 'issuer'])
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_name', sa.String(length=324), nullable=False, server_default=''))
    op.execute("UPDATE study SET patient_name = (SELECT patient.patient_name FROM patient WHERE patient.id = study.patient_fk)")


def downgrade() -> None:
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_column('patient_name')
    with op.batch_alter_table('patient', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint('uq_patient_id_issuer', type_='unique')
        batch_op.create_unique_constraint('patient_patient_id_key', ['patient_id'])
        batch_op.drop_column('names_differ')
        batch_op.drop_column('issuer')
