"""full-text assessments: independent votes and resolutions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

Adds ``fulltext_assessments.kind`` (``verdict`` | ``vote`` | ``resolution``). Every existing
row was one assessor's verdict, which settles its record, and becomes ``verdict`` (the server
default, kept so that a process still running the previous code inserts verdicts, too): no
record's full-text outcome changes.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fulltext_assessments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default='verdict'))


def downgrade() -> None:
    with op.batch_alter_table('fulltext_assessments', schema=None) as batch_op:
        batch_op.drop_column('kind')
