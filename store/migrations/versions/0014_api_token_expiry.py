"""API tokens expire

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

Adds ``users.api_token_expires_at`` (nullable): when the user's API token stops working. New
tokens get ``MMLR_API_TOKEN_DAYS`` (default 90) from their issue. Tokens issued before the
upgrade had no lifetime; ending them at once would break every script on the day of the upgrade,
so each existing token is given 90 days from the upgrade instead (the default lifetime: a
migration does not read the settings, and 90 days leaves time to replace them whatever
``MMLR_API_TOKEN_DAYS`` is). Users without a token keep NULL. A downgrade drops the column (the
previous code has tokens that never expire).
"""
from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

#: The lifetime given to the tokens that exist at the upgrade (the setting's default).
EXISTING_TOKEN_DAYS = 90


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_token_expires_at',
                                      sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    users = sa.table('users', sa.column('api_token_hash', sa.String()),
                     sa.column('api_token_expires_at', sqlmodel.sql.sqltypes.UTCDateTime()))
    expires = datetime.now(UTC) + timedelta(days=EXISTING_TOKEN_DAYS)
    op.execute(users.update().where(users.c.api_token_hash.is_not(None))
               .values(api_token_expires_at=expires))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('api_token_expires_at')
