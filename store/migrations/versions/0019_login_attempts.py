"""login attempts: the throttle counts a password check while it runs

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

Adds the table ``login_attempts``: one row per password check in progress (a login, or the
password asked again on /account and the admin page), written under the throttle's lock
before the scrypt check and deleted when it ends. The throttle counts these rows beside the
failed logins of the audit trail, so parallel attempts can no longer all pass its count before
any failure is recorded. A new table: no existing row changes; a downgrade drops it (only
checks running at that moment are in it).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_attempts_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_attempts_at'))

    op.drop_table('login_attempts')
