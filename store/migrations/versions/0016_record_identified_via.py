"""keep how each record was first identified

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02

Adds ``records.identified_via`` (text, not null, default "search"): the route by which the
review first identified the record, which PRISMA 2020 splits into two columns —
"search" (a PubMed search: the create-date or modification-date pass), "pmid" (a curator's
PMID list: the /fetch page or ``mmlr poll --pmids``; PRISMA's "identification via other
methods") and "watched" (a trial report's PMID re-fetched by the modified pass).

Back-fill rule. Every poll run keeps the PMID list it fetched (``poll_runs.pmids``) and its
start time, and a record's ``first_seen_at`` is the instant the batch that inserted it was
stored, inside that run. So a record's first route is the kind of the *earliest-started* run
whose list holds its PMID and that started no later than the record's ``first_seen_at`` (a run
started after the record was stored can only have re-fetched it): a "pmids" run gives "pmid",
a "watched" run "watched", any other kind "search". The earliest such run, not the one that
happened to store it: a PMID a curator asked for that PubMed left out of the answer, and a
later search then fetched, was still identified by the curator first (the poll's runtime rule
is the same). Records no run lists (imported, or stored by a run since deleted) keep
"search", the only route mmlr had before this migration. A downgrade drops the column.
"""
from __future__ import annotations

from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

#: PollRun.kind -> the route it identifies a new record by (as store.models.IDENTIFIED_VIA;
#: copied, not imported: a migration must keep meaning what it meant when it was written).
_ROUTE = {"pmids": "pmid", "watched": "watched"}
_CHUNK = 500

_runs = sa.table('poll_runs', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                 sa.column('pmids', sa.JSON),
                 sa.column('started_at', sqlmodel.sql.sqltypes.UTCDateTime()))
_records = sa.table('records', sa.column('pmid', sa.BigInteger),
                    sa.column('first_seen_at', sqlmodel.sql.sqltypes.UTCDateTime()),
                    sa.column('identified_via', sa.String))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identified_via', sqlmodel.sql.sqltypes.AutoString(),
                                      server_default='search', nullable=False))
    conn = op.get_bind()
    # PMID -> (start, kind) of the earliest run listing it; runs in start order, so the first
    # run seen for a PMID is its earliest.
    first: dict[int, tuple[datetime, str]] = {}
    rows = conn.execute(sa.select(_runs.c.kind, _runs.c.pmids, _runs.c.started_at)
                        .order_by(_runs.c.started_at, _runs.c.id))
    for kind, pmids, started in rows:
        for pmid in pmids or []:
            first.setdefault(int(pmid), (_aware(started), kind))
    routes: dict[str, list[int]] = {}
    for pmid, seen in conn.execute(sa.select(_records.c.pmid, _records.c.first_seen_at)):
        run = first.get(int(pmid))
        if run is not None and run[0] <= _aware(seen) and run[1] in _ROUTE:
            routes.setdefault(_ROUTE[run[1]], []).append(int(pmid))
    for route, pmids in routes.items():
        for i in range(0, len(pmids), _CHUNK):
            conn.execute(_records.update()
                         .where(_records.c.pmid.in_(pmids[i:i + _CHUNK]))
                         .values(identified_via=route))


def downgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('identified_via')
