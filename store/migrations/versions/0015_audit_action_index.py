"""index the audit trail by action

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

Adds the index ``ix_audit_log_action`` on ``audit_log.action``. The screening pool
(``store.screening_pool``) leaves out the previous version's reports, found through the
"seed.trial" audit rows, in every query that counts or lists records to screen: the queue page
alone makes about twenty. Without the index each of them reads the whole audit trail, which
grows with every decision; with it, the seed rows are a lookup. The audit page's filter by
action uses it too. No data changes; a downgrade drops the index.
"""
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))
