"""Screening decisions: one append-only Decision row per click, with its provenance.

Provenance is what the curator saw: the model version that produced the score on the page,
that score, the rank in the queue and whether the record was in the random audit sample. It
is read from the record on the server (not from the form) so it cannot be forged, except the
rank, which only the queue page knows.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from screening.web.deps import get_or_404
from store.audit import audit
from store.errors import ValidationError
from store.models import Decision, Record, User

DECISIONS: tuple[str, ...] = ("include", "exclude", "maybe")
MAX_REASON = 2000


def parse_pmid(value: Any) -> int:
    text = str(value).strip()
    if not text.isdigit() or len(text) > 12 or int(text) <= 0:
        raise ValidationError(f"{value!r} is not a PMID", hint="a PMID is a positive whole number")
    return int(text)


def parse_rank(value: Any) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValidationError(f"rank_shown {value!r} is not a positive whole number")
    return int(text)


def record_decision(session: Session, *, user: User, pmid: int, decision: str,
                    reason: str | None = None, rank_shown: int | None = None) -> Decision:
    """Append a decision and update the record's current decision; the caller commits."""
    if decision not in DECISIONS:
        raise ValidationError(f"decision {decision!r} is not valid",
                              hint=f"choose one of {', '.join(DECISIONS)}")
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationError(f"the reason is {len(reason)} characters long",
                              hint=f"keep it under {MAX_REASON} characters")
    record = get_or_404(session, Record, pmid,
                        missing=f"record PMID {pmid} is not in the database")
    row = Decision(
        pmid=pmid, user_id=user.id, decision=decision, reason=reason,
        model_version_id=record.score_model_version_id, score_shown=record.score,
        rank_shown=rank_shown, audit_sample=record.audit_sample,
    )
    session.add(row)
    record.decision = decision
    session.add(record)
    session.flush()
    audit(session, "decision.add", actor=user.email, object_type="record", object_id=pmid,
          decision=decision, decision_id=row.id, model_version_id=row.model_version_id,
          score_shown=row.score_shown, rank_shown=rank_shown)
    return row


def decision_history(session: Session, pmid: int) -> list[tuple[Decision, str | None]]:
    """Every decision on the record, newest first, with the curator's e-mail."""
    stmt = (select(Decision, User.email).join(User, col(Decision.user_id) == col(User.id),
                                              isouter=True)
            .where(Decision.pmid == pmid).order_by(col(Decision.created_at).desc(),
                                                   col(Decision.id).desc()))
    return [(d, e) for d, e in session.exec(stmt).all()]
