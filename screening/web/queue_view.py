"""What the queue page shows beside the queue itself (``screening.queue.queue``, the active
learner's order with the audit sample interleaved): counts, health and progress."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from screening.health import screening_health as _health
from store.models import Decision, KeyValue, Record

log = logging.getLogger(__name__)


def queue_counts(session: Session) -> dict[str, int]:
    live = col(Record.deleted).is_(False)
    total = session.exec(select(func.count()).select_from(Record).where(live)).one()
    undecided = session.exec(select(func.count()).select_from(Record).where(
        live, col(Record.decision).is_(None))).one()
    flagged = session.exec(select(func.count()).select_from(Record).where(
        live, col(Record.decision).is_(None), col(Record.flagged).is_(True))).one()
    decisions = session.exec(select(func.count()).select_from(Decision)).one()
    return {"records": int(total), "undecided": int(undecided), "flagged": int(flagged),
            "decisions": int(decisions)}


def screening_health(session: Session) -> dict[str, Any] | None:
    """The health banner's figures; None (no banner) when they cannot be computed."""
    try:
        return dict(_health(session))
    except Exception:  # the banner is advisory; the queue must still render
        log.exception("screening_health failed")
        return None


def screening_progress(session: Session) -> dict[str, Any] | None:
    row = session.get(KeyValue, "screening.progress")
    return dict(row.value) if row is not None and row.value else None
