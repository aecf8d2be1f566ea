"""keep what PubMed left out of a searched query

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

Adds ``poll_runs.dropped_terms`` (JSON list, not null, default ``[]``): the parts of the query
an esearch answer's ErrorList/WarningList said PubMed did not know (PhraseNotFound,
FieldNotFound, QuotedPhraseNotFound, PhraseIgnored), each as "<term> (<why>)". PubMed searches
the rest of the query without them (ENTREZ.md §2.1), so ``mmlr status`` says when the last poll
searched without part of the protocol's query. Runs before this migration get ``[]``: their
answers were not kept, nothing can be filled in. A downgrade drops the column.
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('poll_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dropped_terms', sa.JSON(), nullable=False,
                                      server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table('poll_runs', schema=None) as batch_op:
        batch_op.drop_column('dropped_terms')
