"""Append-only audit trail."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from store.models import AuditLog


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
