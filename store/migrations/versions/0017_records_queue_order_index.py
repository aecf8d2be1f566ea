"""index the records in the queue's order on PostgreSQL

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02

Adds ``ix_records_queue_order`` on ``records (score DESC NULLS LAST, pmid DESC)`` on
PostgreSQL: exactly the order of the queue page (``screening.queue``), the conflicts page and
the search page — highest score first, unscored records last, ties by the newest PMID. Until
now PostgreSQL could serve that order from no index: ``ix_records_score`` is ascending with
NULLs last, and walked backwards it gives ``DESC NULLS FIRST``, so every page of the queue
read and sorted every waiting record (33 ms for the first page's 51 rows of 20,000
records; with the index the walk stops after the page, 1.4 ms; docs/benchmarks.md).
``GET /api/records`` reads scored and unscored records apart and keeps using
``ix_records_score``; the digest reads every flagged record, so it sorts them anyway.

On SQLite nothing changes. Its indexes cannot say NULLS LAST, and need not: SQLite orders
NULL below every number, so the order ``score DESC`` already ends with the unscored records
and SQLite walks ``ix_records_score`` backwards for it (``store.planner``), sorting only the
records that tie on a score by PMID (on 20,000 records the queue's statement took about 5 ms
with ``ix_records_score`` and no less with an index ``(score DESC, pmid DESC)``). A second
index on the score would only slow the writes that matter there: a re-score updates every
record's score, and each score index with it. The models declare the index for PostgreSQL only (``ddl_if``; ``store.schema_objects``).

A plain ``CREATE INDEX`` (not ``CONCURRENTLY``, which cannot run inside the migration's
transaction): it holds off writes to ``records`` for the second it takes on a review's tens
of thousands of records. No data changes; a downgrade drops the index.
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def upgrade() -> None:
    if _postgresql():
        op.create_index('ix_records_queue_order', 'records',
                        [sa.text('score DESC NULLS LAST'), sa.text('pmid DESC')], unique=False)


def downgrade() -> None:
    if _postgresql():
        op.drop_index('ix_records_queue_order', table_name='records')
