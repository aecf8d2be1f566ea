"""keep a record's volume, issue, pages and ELocationID

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

Adds ``records.volume``, ``records.issue``, ``records.pages`` (as PubMed prints them, e.g.
"3003-15") and ``records.elocation`` (the first valid ELocationID that is not the DOI), all
nullable text. Existing rows keep NULL: mmlr never kept the PubMed XML a record was parsed from
(only the parsed fields and their revisions), so there is nothing to back-fill from here. They
are filled the next time the record is fetched (the crdt pass's recheck of records not yet
MEDLINE-indexed, the weekly modified pass and its re-fetch of trial reports and included
records, or ``mmlr poll --pmids``); that fill is not counted as a change of the record (no
revision, no re-score: monitor.records.legacy_content_hash).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_COLUMNS = ('volume', 'issue', 'pages', 'elocation')


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        for name in _COLUMNS:
            batch_op.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
