"""dual screening: votes and resolutions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Adds ``decisions.kind`` (``vote`` | ``resolution``) and an index on ``decisions.user_id``.
Every existing row was a vote under single screening and becomes ``vote`` (the server
default, kept so that a process still running the previous code inserts votes, too);
``records.decision`` is not touched, so records already decided stay decided.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default='vote'))
        batch_op.create_index(batch_op.f('ix_decisions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_user_id'))
        batch_op.drop_column('kind')
