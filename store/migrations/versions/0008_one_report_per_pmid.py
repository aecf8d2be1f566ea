"""one report per publication and trial

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A trial has one report per PMID: the forms refuse a second one since 2026-11-30, and now the
database does too (the unique index ``uq_trial_reports_trial_pmid``; reports without a PMID are not
constrained), so two instances saving the same report at once cannot both succeed.

Databases made by ``mmlr init`` before that fix hold one duplicate: CEMSG 01-002-0601's PMID
20418244 was added twice (the trial's primary report and the seed estimate's). Before the
constraint is added, each set of reports of one trial with the same PMID is merged into its
first (lowest id): estimates that pointed at a later one point at the first, and the later
ones are deleted. The downgrade drops the index; merged reports stay merged.
"""
import logging

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    conn = op.get_bind()
    duplicates = conn.execute(sa.text(
        "SELECT trial_id, pmid, MIN(id) FROM trial_reports WHERE pmid IS NOT NULL "
        "GROUP BY trial_id, pmid HAVING COUNT(*) > 1")).all()
    for trial_id, pmid, keep in duplicates:
        params = {"trial_id": trial_id, "pmid": pmid, "keep": keep}
        later = ("SELECT id FROM trial_reports WHERE trial_id = :trial_id AND pmid = :pmid "
                 "AND id <> :keep")
        conn.execute(sa.text(f"UPDATE estimates SET report_id = :keep "
                             f"WHERE report_id IN ({later})"), params)
        removed = conn.execute(sa.text(
            "DELETE FROM trial_reports WHERE trial_id = :trial_id AND pmid = :pmid "
            "AND id <> :keep"), params).rowcount
        log.info("merged %s duplicate report(s) of PMID %s into report %s (trial %s)",
                 removed, pmid, keep, trial_id)
    # A unique index rather than a table constraint: SQLite would rebuild the table for a
    # constraint, which its foreign keys (estimates.report_id) forbid.
    op.create_index('uq_trial_reports_trial_pmid', 'trial_reports', ['trial_id', 'pmid'],
                    unique=True)


def downgrade() -> None:
    op.drop_index('uq_trial_reports_trial_pmid', table_name='trial_reports')
