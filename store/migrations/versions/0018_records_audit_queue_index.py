"""index the audit sample still to screen, in the queue's order

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

Adds ``ix_records_audit_queue``, a partial index of the records of the random audit sample
that await a decision (``audit_sample`` true, ``decision`` NULL), in the queue's order:
``(score DESC NULLS LAST, pmid DESC)`` on PostgreSQL, ``(score DESC, pmid DESC)`` on SQLite,
whose indexes cannot say NULLS LAST and whose DESC already puts NULL last.

Every page of the queue (``screening.queue``) first reads the audit records it interleaves.
They are a few percent of the records below the flag threshold, so without the index both
engines read every waiting record to find a page of them, and every one of them once the
audit sample is screened: about 10 ms on SQLite and 5-7 ms on PostgreSQL for 20,000
records, against under half a millisecond with it (docs/benchmarks.md). The index holds
only the audit records still waiting, so it stays small and a re-score touches few entries.

A plain ``CREATE INDEX`` (not ``CONCURRENTLY``, which cannot run inside the migration's
transaction). No data changes; a downgrade drops the index.
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_records_audit_queue', 'records',
                        [sa.text('score DESC NULLS LAST'), sa.text('pmid DESC')], unique=False,
                        postgresql_where=sa.text('audit_sample IS true AND decision IS NULL'))
    else:
        op.create_index('ix_records_audit_queue', 'records',
                        [sa.text('score DESC'), sa.text('pmid DESC')], unique=False,
                        sqlite_where=sa.text('audit_sample IS 1 AND decision IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_records_audit_queue', table_name='records')
