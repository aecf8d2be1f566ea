"""keep a reported hazard ratio and its CI as printed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

Adds ``estimates.printed`` (JSON, nullable): the HR and CI limits of a reported estimate as
the curator typed them from the paper ("0.50", not the float 0.5), in the orientation entered,
so the Correct form gives them back as printed. Existing rows keep NULL (their text was never
stored; the form falls back on the stored numbers); nothing else changes.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('estimates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('printed', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('estimates', schema=None) as batch_op:
        batch_op.drop_column('printed')
