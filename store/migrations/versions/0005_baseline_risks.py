"""baseline risks (assumed control-arm risk per analysis)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Adds the table ``baseline_risks``: one row per assumed control-arm risk of an analysis (the
proportion of control patients event-free at a number of months, with its source, who entered
it and when), append-only, the newest per analysis current. A new table: no existing row
changes, and a downgrade drops the entries with it.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('baseline_risks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('analysis_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('months', sa.Float(), nullable=False),
    sa.Column('event_free', sa.Float(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('entered_by', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entered_by'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('baseline_risks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_baseline_risks_analysis_key'), ['analysis_key'],
                              unique=False)



def downgrade() -> None:
    with op.batch_alter_table('baseline_risks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_baseline_risks_analysis_key'))

    op.drop_table('baseline_risks')
