"""keep the inputs of derived hazard ratios

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Adds ``estimates.derivation_inputs`` (JSON, nullable): what a curator typed for an HR derived
from a P value and events, O−E and V, or medians. Existing rows keep NULL (their inputs were
never stored); nothing else changes.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('estimates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('derivation_inputs', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('estimates', schema=None) as batch_op:
        batch_op.drop_column('derivation_inputs')
