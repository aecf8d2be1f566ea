"""Full-text assessment: the second screening stage of PRISMA 2020.

A record included at title/abstract screening is a *report sought for retrieval*. A curator
then reads its full text and records one verdict (``FullTextAssessment``, append-only; the
latest per record counts):

- ``eligible`` — the report belongs in the review (it is then linked to a trial and its
  hazard ratios extracted);
- ``excluded`` — with one reason from :data:`REASONS`, which PRISMA 2020 asks to report with
  counts ("Reports excluded: reason 1 (n = …)");
- ``not_retrieved`` — the full text could not be obtained.

Only records whose current decision is *include* and that PubMed has not deleted take part:
a verdict on a record whose title/abstract decision later changed stays in the history but
counts nowhere. The rules live here (store) so the pages, the API, the PRISMA counts and the
digest share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.audit import audit
from store.errors import NotFoundError, ValidationError
from store.models import FullTextAssessment, Record, User

VERDICTS: dict[str, str] = {
    "eligible": "eligible",
    "excluded": "excluded",
    "not_retrieved": "full text not retrieved",
}
#: Reasons for excluding a report after reading it (code → what PRISMA's box says). Written
#: for this review's question (randomised trials of maintenance therapy in multiple myeloma);
#: "other" needs a note saying which.
REASONS: dict[str, str] = {
    "not_randomised": "not a randomised trial",
    "not_maintenance": "no maintenance comparison (induction, consolidation or relapse "
                       "treatment only)",
    "population": "not multiple myeloma, or not the review's population",
    "no_outcome": "no time-to-event outcome (PFS, EFS or OS) reported",
    "no_results": "no trial results (protocol, design or background only)",
    "other": "other reason (see the note)",
}
MAX_NOTE = 2000


def check_assessment(verdict: str, reason: str | None, note: str | None,
                     ) -> tuple[str, str | None, str | None]:
    """The verdict, reason and note as stored, or a ValidationError saying what is wrong."""
    if verdict not in VERDICTS:
        raise ValidationError(f"full-text verdict {verdict!r} is not valid",
                              hint=f"choose one of {', '.join(VERDICTS)}")
    reason = (reason or "").strip() or None
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise ValidationError(f"the note is {len(note)} characters long",
                              hint=f"keep it under {MAX_NOTE} characters")
    if verdict == "excluded":
        if reason is None:
            raise ValidationError("a report excluded after full-text assessment needs a "
                                  "reason", hint=f"choose one of {', '.join(REASONS)}")
        if reason not in REASONS:
            raise ValidationError(f"full-text exclusion reason {reason!r} is not valid",
                                  hint=f"choose one of {', '.join(REASONS)}")
        if reason == "other" and note is None:
            raise ValidationError("the reason 'other' needs a note saying which reason",
                                  hint="write the reason in the note")
    elif reason is not None:
        raise ValidationError(f"only an excluded report takes a reason, not one that is "
                              f"{VERDICTS[verdict]}", hint="leave the reason empty")
    return verdict, reason, note


def assess(session: Session, *, user: User, pmid: int, verdict: str,
           reason: str | None = None, note: str | None = None) -> FullTextAssessment:
    """Append a full-text verdict on ``pmid``; the caller commits."""
    verdict, reason, note = check_assessment(verdict, reason, note)
    record = session.get(Record, pmid)
    if record is None:
        raise NotFoundError(f"record PMID {pmid} is not in the database")
    if record.deleted:
        raise ValidationError(f"PMID {pmid} was deleted from PubMed; it is not assessed in "
                              "full text")
    if record.decision != "include":
        raise ValidationError(
            f"PMID {pmid} is not included at title/abstract screening (current decision: "
            f"{record.decision or 'none'}); only included records are assessed in full text",
            hint="include it on its record page first")
    row = FullTextAssessment(pmid=pmid, user_id=user.id, verdict=verdict, reason=reason,
                             note=note)
    session.add(row)
    session.flush()
    audit(session, "fulltext.assess", actor=user.email, object_type="record", object_id=pmid,
          verdict=verdict, reason=reason, assessment_id=row.id)
    return row


def _sought() -> Any:
    """Conditions of the reports sought for retrieval: included, not deleted."""
    return (col(Record.decision) == "include", col(Record.deleted).is_(False))


def latest_assessments(session: Session, pmids: Iterable[int] | None = None,
                       ) -> dict[int, FullTextAssessment]:
    """The current (newest) verdict per record, for ``pmids`` or every record."""
    newest = select(func.max(FullTextAssessment.id)).group_by(col(FullTextAssessment.pmid))
    stmt = select(FullTextAssessment).where(col(FullTextAssessment.id).in_(newest))
    if pmids is not None:
        wanted = list(pmids)
        if not wanted:
            return {}
        stmt = stmt.where(col(FullTextAssessment.pmid).in_(wanted))
    return {a.pmid: a for a in session.exec(stmt)}


@dataclass(frozen=True)
class FullTextCounts:
    """Where the reports sought for retrieval stand. ``sought = not_retrieved + awaiting +
    assessed`` and ``assessed = eligible + sum(excluded.values())``."""

    sought: int
    not_retrieved: int
    awaiting: int
    eligible: int
    excluded: Mapping[str, int] = field(default_factory=dict)  # every reason, 0 included

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())

    @property
    def assessed(self) -> int:
        return self.eligible + self.excluded_total

    def to_json(self) -> dict[str, Any]:
        return {"sought": self.sought, "not_retrieved": self.not_retrieved,
                "awaiting": self.awaiting, "assessed": self.assessed,
                "eligible": self.eligible, "excluded": self.excluded_total,
                "excluded_by_reason": dict(self.excluded)}


def fulltext_counts(session: Session, *, since: datetime | None = None) -> FullTextCounts:
    """The full-text stage in numbers (see :class:`FullTextCounts`). With ``since``, only
    verdicts made after it count as eligible / excluded / not retrieved (``sought`` and
    ``awaiting`` are states, reported as they are now)."""
    sought = int(session.exec(select(func.count()).select_from(Record)
                              .where(*_sought())).one())
    newest = select(func.max(FullTextAssessment.id)).group_by(col(FullTextAssessment.pmid))
    stmt = (select(FullTextAssessment.verdict, FullTextAssessment.reason, func.count())
            .join(Record, col(Record.pmid) == col(FullTextAssessment.pmid))
            .where(col(FullTextAssessment.id).in_(newest), *_sought()))
    if since is not None:
        stmt = stmt.where(col(FullTextAssessment.created_at) > since)
    rows = session.exec(stmt.group_by(col(FullTextAssessment.verdict),
                                      col(FullTextAssessment.reason))).all()
    by: dict[tuple[str, str | None], int] = {(v, r): int(n) for v, r, n in rows}
    excluded = {code: by.get(("excluded", code), 0) for code in REASONS}
    # A reason code no longer in REASONS (renamed in a later version) still counts, as itself.
    for (verdict, code), n in by.items():
        if verdict == "excluded" and code not in excluded:
            excluded[str(code)] = n
    eligible = sum(n for (verdict, _), n in by.items() if verdict == "eligible")
    not_retrieved = sum(n for (verdict, _), n in by.items() if verdict == "not_retrieved")
    judged = int(session.exec(
        select(func.count()).select_from(Record).where(
            *_sought(), col(Record.pmid).in_(select(FullTextAssessment.pmid)))).one())
    return FullTextCounts(sought=sought, not_retrieved=not_retrieved,
                          awaiting=sought - judged, eligible=eligible, excluded=excluded)


def fulltext_state(decision: str | None, deleted: bool, latest: FullTextAssessment | None,
                   ) -> tuple[str | None, str | None]:
    """A record's place in the full-text stage and, for an excluded report, its reason code:
    (None, None) when it takes no part (not included, or deleted), ("awaiting", None) without
    a verdict, else its latest verdict."""
    if decision != "include" or deleted:
        return None, None
    if latest is None:
        return "awaiting", None
    return latest.verdict, latest.reason if latest.verdict == "excluded" else None


def reason_label(code: str | None) -> str:
    """What a reason code means (an unknown code is shown as it is)."""
    return REASONS.get(code or "", code or "")


def assessment_json(row: FullTextAssessment, email: str | None) -> dict[str, Any]:
    return {"id": row.id, "pmid": row.pmid, "verdict": row.verdict, "reason": row.reason,
            "reason_label": reason_label(row.reason) if row.reason else None,
            "note": row.note, "user": email, "created_at": row.created_at.isoformat()}


__all__ = ["MAX_NOTE", "REASONS", "VERDICTS", "FullTextCounts", "assess", "assessment_json",
           "check_assessment", "fulltext_counts", "fulltext_state", "latest_assessments",
           "reason_label"]
