"""when a record was deleted from PubMed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Adds ``records.deleted_at`` (nullable): when a poll hid the record because NLM deleted it, so
the PRISMA page can count deletions since the last digest. Records deleted before this
migration keep NULL (no date was stored for them), and a record PubMed serves again gets NULL
back.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
