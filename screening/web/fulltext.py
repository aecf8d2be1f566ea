"""The full-text stage on the pages and in the API: a record's verdicts for its page, and the
list of reports sought for ``/fulltext`` (rules and counts: ``store.fulltext``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from store.fulltext import REASONS, VERDICTS, latest_assessments, reason_label
from store.models import FullTextAssessment, Record, Trial, TrialReport, User

#: The list's filters: what each shows.
SHOWS = {"awaiting": "awaiting assessment", "all": "every report sought"}
LIST_LIMIT = 500


def verdict_text(row: FullTextAssessment | None) -> str:
    """A verdict in words: "eligible", "excluded: not a randomised trial", "awaiting"."""
    if row is None:
        return "awaiting assessment"
    if row.verdict == "excluded":
        return f"excluded: {reason_label(row.reason)}"
    return VERDICTS.get(row.verdict, row.verdict)


def record_fulltext(session: Session, record: Record) -> dict[str, Any]:
    """What the record page shows of the full-text stage: whether it applies (the record is
    included and not deleted), the current verdict and every verdict, newest first."""
    history = session.exec(
        select(FullTextAssessment, User.email)
        .join(User, col(User.id) == col(FullTextAssessment.user_id), isouter=True)
        .where(FullTextAssessment.pmid == record.pmid)
        .order_by(col(FullTextAssessment.id).desc())).all()
    current = history[0][0] if history else None
    return {"applies": record.decision == "include" and not record.deleted,
            "current": current, "current_text": verdict_text(current),
            "history": [(row, email, verdict_text(row)) for row, email in history],
            "verdicts": VERDICTS, "reasons": REASONS}


@dataclass(frozen=True)
class SoughtReport:
    record: Record
    assessment: FullTextAssessment | None
    trials: list[tuple[int, str]]

    @property
    def verdict(self) -> str:
        return self.assessment.verdict if self.assessment is not None else "awaiting"

    @property
    def text(self) -> str:
        return verdict_text(self.assessment)

    @property
    def unlinked(self) -> bool:
        """Eligible but not yet a report of any trial: its data are not in the analyses."""
        return self.verdict == "eligible" and not self.trials

    def to_json(self) -> dict[str, Any]:
        a = self.assessment
        return {"pmid": self.record.pmid, "title": self.record.title,
                "verdict": self.verdict, "reason": a.reason if a else None,
                "reason_label": reason_label(a.reason) if a and a.reason else None,
                "note": a.note if a else None,
                "assessed_at": a.created_at.isoformat() if a else None,
                "trials": [{"id": i, "name": n} for i, n in self.trials],
                "eligible_not_linked": self.unlinked}


def sought_reports(session: Session, show: str = "all") -> list[SoughtReport]:
    """The reports sought for retrieval (included, not deleted), awaiting ones first, then by
    PMID; ``show="awaiting"`` keeps the ones without a verdict. At most ``LIST_LIMIT``."""
    records = session.exec(select(Record).where(
        col(Record.decision) == "include", col(Record.deleted).is_(False))
        .order_by(col(Record.pmid))).all()
    latest = latest_assessments(session, [r.pmid for r in records])
    links: dict[int, list[tuple[int, str]]] = {}
    for pmid, trial_id, name in session.exec(
            select(TrialReport.pmid, Trial.id, Trial.name).join(Trial)
            .where(col(TrialReport.pmid).in_([r.pmid for r in records]))):
        if pmid is not None and trial_id is not None:  # the IN filter leaves no None pmid
            links.setdefault(int(pmid), []).append((int(trial_id), name))
    rows = [SoughtReport(r, latest.get(r.pmid), links.get(r.pmid, [])) for r in records]
    if show == "awaiting":
        rows = [r for r in rows if r.assessment is None]
    rows.sort(key=lambda r: (r.assessment is not None, r.record.pmid))
    return rows[:LIST_LIMIT]


__all__ = ["LIST_LIMIT", "SHOWS", "SoughtReport", "record_fulltext", "sought_reports",
           "verdict_text"]
