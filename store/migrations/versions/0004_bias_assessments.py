"""risk-of-bias assessments (Cochrane RoB 2)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Adds the table ``bias_assessments``: one row per RoB 2 assessment of a trial's result for one
endpoint (five domain judgments with their support as JSON, the overall judgment and its note,
who assessed and when), append-only, the newest per trial and endpoint current. A new table:
no existing row changes, and a downgrade drops the assessments with it.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bias_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('domains', sa.JSON(), nullable=False),
    sa.Column('overall', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('overall_note', sa.Text(), nullable=True),
    sa.Column('assessed_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assessed_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('bias_assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bias_assessments_trial_id'), ['trial_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bias_assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bias_assessments_trial_id'))

    op.drop_table('bias_assessments')
