"""full-text assessments

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Adds the table ``fulltext_assessments``: each curator's full-text eligibility verdict on a
record included at title/abstract screening (eligible, excluded with a reason, or not
retrieved), append-only, the latest per record counting. A new table: no existing row
changes; a downgrade drops the verdicts with it.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fulltext_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pmid', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('fulltext_assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fulltext_assessments_created_at'), ['created_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_fulltext_assessments_pmid'), ['pmid'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('fulltext_assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fulltext_assessments_pmid'))
        batch_op.drop_index(batch_op.f('ix_fulltext_assessments_created_at'))

    op.drop_table('fulltext_assessments')
