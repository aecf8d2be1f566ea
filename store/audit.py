"""Append-only audit trail."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from store.ids import parse_id
from store.models import AuditLog

#: The audit action of a trial the seed evidence added (``monitor.bootstrap``): the trials of
#: the review's previous version, found by it even after a curator renamed them.
SEED_TRIAL = "seed.trial"


def audit(
    session: Session,
    action: str,
    *,
    actor: str = "system",
    object_type: str | None = None,
    object_id: object = None,
    **details: Any,
) -> None:
    """Add one audit row to the session (committed with the caller's transaction)."""
    session.add(
        AuditLog(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=details,
        )
    )


def seed_trial_ids(session: Session) -> set[int]:
    """Ids of the trials the seed evidence added (the previous version of the review)."""
    rows = session.exec(select(AuditLog.object_id).where(
        col(AuditLog.action) == SEED_TRIAL, col(AuditLog.object_type) == "trial"))
    return {trial_id for row in rows if row and (trial_id := parse_id(row)) is not None}
