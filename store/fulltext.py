"""Full-text assessment: the second screening stage of PRISMA 2020.

A record included at title/abstract screening is a *report sought for retrieval*. Its full
text is read and judged (``FullTextAssessment``, append-only):

- ``eligible`` — the report belongs in the review (it is then linked to a trial and its
  hazard ratios extracted);
- ``excluded`` — with one reason from :data:`REASONS`, which PRISMA 2020 asks to report with
  counts ("Reports excluded: reason 1 (n = …)");
- ``not_retrieved`` — the full text could not be obtained.

Who settles a report (:func:`outcome`, the one rule every page, count and export reads):

- **One assessor** (``MMLR_SCREENERS_PER_RECORD=1``): each judgement is a row of kind
  ``verdict`` and the newest one settles the report.
- **Two independent assessors** (``MMLR_SCREENERS_PER_RECORD=2``, Cochrane MECIR C39/C40 ask
  for it at both stages): each judgement is a ``vote``. The report is settled when two
  people's latest votes agree on the verdict *and*, for an exclusion, on the reason — PRISMA
  reports one reason per report, so two different reasons are a conflict too. Until then it
  is awaiting (no vote), awaiting a second assessor (one) or a conflict (they differ). A
  conflict is settled by a ``resolution`` (a third curator's or an admin's, with a note); a
  settled report changes only by another resolution. While one vote waits for the second,
  only its author sees it (blinding).
- Rows of kind ``verdict`` and ``resolution`` settle whatever the setting, so switching it
  never unsettles a report: the mode only decides what a *new* judgement is.
- The same judgement (verdict, reason and note) sent again by its author while it still
  counts — the newest row on the report for a verdict or a resolution, the author's latest
  vote for a vote — is not stored twice (:func:`repeated_assessment`, ``store.repeats``): a
  client retrying after a timeout gets the first one back.

Only records of the screening pool (``store.screening_pool``) that passed title/abstract
screening — current decision *include*, or *maybe* (the abstract cannot decide, so the full
text must) — and that PubMed has not deleted take part: a verdict on a record whose
title/abstract decision later changed to exclude stays in the history but counts nowhere. A
report of the previous version of the review is not sought again, whatever decision a
curator recorded on it: that review included it, and the PRISMA flow removes it as a
duplicate before screening, so neither its decision nor a full-text verdict on it counts.
The rules live here (store) so the pages, the API, the PRISMA counts and the digest share
them; who may resolve (roles) is the web app's (``screening.web.fulltext``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlmodel import Session, col, select

from store.audit import audit
from store.batches import in_chunks
from store.errors import StateError, ValidationError
from store.models import FullTextAssessment, Record, TrialReport, User
from store.record_lock import locked_record
from store.repeats import Recorded
from store.screening_pool import (
    in_screening_pool,
    previous_report_pmids,
    previous_report_trials,
)
from store.settings import is_dual_screening
from store.text import shorten
from store.vote_rule import vote_bar

log = logging.getLogger(__name__)

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
#: Title/abstract decisions that send a record to the full-text stage.
PASSED: tuple[str, ...] = ("include", "maybe")
#: Settled verdicts that keep a report out of the analyses.
RULED_OUT: tuple[str, ...] = ("excluded", "not_retrieved")

VERDICT = "verdict"  # one assessor's judgement: settles the report
VOTE = "vote"  # one of two independent assessors' judgements
RESOLUTION = "resolution"  # a third person's ruling on a conflict (or an admin's change)
SETTLING = frozenset({VERDICT, RESOLUTION})

State = Literal["awaiting", "awaiting_second", "conflict", "resolved"]


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


@dataclass(frozen=True)
class Outcome:
    """Where one report stands (:func:`outcome`): ``row`` is the judgement that settled it
    (None until settled) and ``votes`` each assessor's latest vote, in the order those latest
    votes were cast (so the last one is the vote that made two agree)."""

    state: State
    row: FullTextAssessment | None = None
    votes: tuple[FullTextAssessment, ...] = ()

    @property
    def verdict(self) -> str:
        """The settled verdict, else the state (``awaiting``, ``awaiting_second``,
        ``conflict``)."""
        return self.row.verdict if self.row is not None else self.state

    @property
    def reason(self) -> str | None:
        """The reason code of a settled exclusion."""
        return self.row.reason if self.row is not None and self.row.verdict == "excluded" \
            else None

    @property
    def note(self) -> str | None:
        """The settled outcome's note. Two assessors agree on the verdict and the reason, not
        on their words: when their agreeing votes carry different notes (both excluded for
        "other", one saying "single-arm study", the other "conference abstract only"), the
        note keeps each, in the order the votes were cast, joined by " / "; a verdict or a
        resolution has its own note."""
        if self.row is None:
            return None
        if self.row.kind != VOTE:
            return self.row.note
        notes = list(dict.fromkeys(v.note for v in self.votes if v.note))
        return " / ".join(notes) if notes else None

    def voted(self, user_id: int | None) -> FullTextAssessment | None:
        """``user_id``'s latest vote, if they voted."""
        return next((v for v in self.votes if v.user_id is not None and v.user_id == user_id),
                    None)


AWAITING = Outcome("awaiting")


def outcome(rows: Iterable[FullTextAssessment]) -> Outcome:
    """The rule of the module docstring over one record's rows (any order)."""
    ordered = sorted(rows, key=lambda r: r.id or 0)
    settling = [r for r in ordered if r.kind in SETTLING]
    latest: dict[int, FullTextAssessment] = {}
    for row in ordered:
        if row.kind == VOTE and row.user_id is not None:  # an unattributed vote is nobody's
            latest.pop(row.user_id, None)
            latest[row.user_id] = row  # re-inserted: the dict keeps latest-vote order
    votes = tuple(latest.values())
    if settling:
        return Outcome("resolved", settling[-1], votes)
    if not votes:
        return AWAITING
    if len({(v.verdict, v.reason) for v in votes}) > 1:
        return Outcome("conflict", None, votes)
    if len(votes) >= 2:
        return Outcome("resolved", votes[-1], votes)
    return Outcome("awaiting_second", None, votes)


def _rows(session: Session, pmids: Sequence[int]) -> dict[int, list[FullTextAssessment]]:
    out: dict[int, list[FullTextAssessment]] = {p: [] for p in pmids}
    for part in in_chunks(pmids):
        for row in session.exec(select(FullTextAssessment)
                                .where(col(FullTextAssessment.pmid).in_(part))
                                .order_by(col(FullTextAssessment.id))):
            out[row.pmid].append(row)
    return out


def outcomes(session: Session, pmids: Iterable[int]) -> dict[int, Outcome]:
    """Each record's :class:`Outcome` (``awaiting`` when it has no row)."""
    wanted = sorted(set(pmids))
    return {pmid: outcome(rows) for pmid, rows in _rows(session, wanted).items()}


def assess(session: Session, *, user: User, pmid: int, verdict: str,
           reason: str | None = None, note: str | None = None,
           screeners_per_record: int) -> Recorded[FullTextAssessment]:
    """Record ``user``'s full-text judgement of ``pmid``: a verdict with one assessor, a vote
    with two (refused on a settled report, and on a conflict by anyone but its assessors,
    who may change their vote). The caller commits. A repeat of the judgement that counts
    stores nothing and returns it (``created`` false)."""
    kind = VOTE if is_dual_screening(screeners_per_record) else VERDICT
    verdict, reason, note = check_assessment(verdict, reason, note)
    record = assessable_record(session, pmid)
    # Before the vote's bar: the retry of the vote that settled the report must hear
    # "already recorded", not "votes no longer change it".
    same = repeated_assessment(session, user=user, pmid=pmid, kind=kind, verdict=verdict,
                               reason=reason, note=note)
    if same is not None:
        log.info("PMID %s full text: %s's %s repeated; nothing stored", pmid, user.id, kind)
        return Recorded(same, created=False)
    before = outcomes(session, [pmid])[pmid]
    bar = vote_bar(before.state, voted=before.voted(user.id) is not None)
    if kind == VOTE:
        if bar == "settled":
            raise StateError(
                f"PMID {pmid}'s full-text assessment is settled ({verdict_words(before)}); "
                "votes no longer change it",
                hint="an admin can change it with a resolution on the record page")
        if bar == "third_person":
            raise StateError(
                f"PMID {pmid}'s two full-text assessors disagree; a third vote does not "
                "settle it", hint="resolve the conflict on the record page instead")
    return Recorded(append(session, user=user, record=record, verdict=verdict, reason=reason,
                           note=note, kind=kind), created=True)


def repeated_assessment(session: Session, *, user: User, pmid: int, kind: str, verdict: str,
                        reason: str | None, note: str | None) -> FullTextAssessment | None:
    """``user``'s stored judgement of ``kind`` that this one (checked: see
    :func:`check_assessment`) would repeat, or None: for a vote the user's latest vote, for a
    verdict or a resolution the newest row on the report, whoever made it (a colleague's
    judgement since then makes the same one again a change). The caller holds the record's
    lock (:func:`assessable_record`), so a retry waits for the first attempt and finds it."""
    if user.id is None:
        return None
    rows = _rows(session, [pmid])[pmid]
    if kind == VOTE:
        rows = [r for r in rows if r.kind == VOTE and r.user_id == user.id]
    latest = rows[-1] if rows else None
    if (latest is not None and latest.user_id == user.id and latest.kind == kind
            and (latest.verdict, latest.reason, latest.note) == (verdict, reason, note)):
        return latest
    return None


def append(session: Session, *, user: User, record: Record, verdict: str,
           reason: str | None, note: str | None, kind: str) -> FullTextAssessment:
    """Store one checked judgement of ``kind`` on ``record`` (locked by the caller through
    :func:`assessable_record`) and audit it with the outcome it leads to."""
    row = FullTextAssessment(pmid=record.pmid, user_id=user.id, verdict=verdict,
                             reason=reason, note=note, kind=kind)
    session.add(row)
    session.flush()
    after = outcomes(session, [record.pmid])[record.pmid]
    audit(session, "fulltext.assess" if kind != RESOLUTION else "fulltext.resolve",
          actor=user.email, object_type="record", object_id=record.pmid, verdict=verdict,
          reason=reason, assessment_id=row.id, kind=kind, state=after.state,
          settled=after.verdict if after.state == "resolved" else None)
    if kind == VOTE and after.state != "awaiting_second":
        log.info("PMID %s full text: %s after %s votes", record.pmid, after.state,
                 len(after.votes))
    return row


def assessable_record(session: Session, pmid: int) -> Record:
    """``pmid``'s record, write-locked (two votes at one moment see each other), or an error
    saying why it takes no part in the full-text stage."""
    record = locked_record(session, pmid)
    if record.deleted:
        raise ValidationError(f"PMID {pmid} was deleted from PubMed; it is not assessed in "
                              "full text")
    previous_of = previous_report_trials(session, pmid)
    if previous_of:
        names = ", ".join(t.name for t in previous_of)
        raise ValidationError(
            f"PMID {pmid} is a report of {names} in the previous version of the review: "
            "already included, it is not sought for retrieval again",
            hint="its trial's numbers are entered on the trial's page")
    if record.decision not in PASSED:
        raise ValidationError(
            f"PMID {pmid} is not included at title/abstract screening (current decision: "
            f"{record.decision or 'none'}); only records included (or marked maybe) are "
            "assessed in full text", hint="include it on its record page first")
    return record


@dataclass(frozen=True)
class SoughtRule:
    """Whether a record takes part in the full-text stage: :func:`sought_conditions`, for
    records already loaded. Build it once per request or export (:meth:`for_session`): it
    reads the previous version's report PMIDs once, then answers for any number of records
    without another query."""

    previous: frozenset[int]  # store.screening_pool.previous_report_pmids

    @classmethod
    def for_session(cls, session: Session) -> SoughtRule:
        return cls(previous=frozenset(previous_report_pmids(session)))

    def is_sought(self, record: Record) -> bool:
        """Passed title/abstract screening, not deleted, and not a previous version's report
        (taken as a row of ``Record``'s columns too: the exports read plain rows)."""
        return (record.decision in PASSED and not record.deleted
                and not self.is_previous_report(record.pmid))

    def is_previous_report(self, pmid: int) -> bool:
        """A report of the previous version of the review: never sought, whatever decision a
        curator recorded on it (the module docstring)."""
        return pmid in self.previous


def sought_conditions() -> tuple[Any, ...]:
    """Conditions on ``Record`` of the reports sought for retrieval: in the screening pool,
    passed screening, not deleted."""
    return (col(Record.decision).in_(PASSED), col(Record.deleted).is_(False),
            in_screening_pool())


def sought_pmids(session: Session) -> list[int]:
    """The reports sought for retrieval (:func:`sought_conditions`), by PMID."""
    return [int(p) for p in session.exec(select(Record.pmid).where(*sought_conditions())
                                         .order_by(col(Record.pmid)))]


#: Characters of an "other" reason's note kept where a list shows it on one line.
NOTE_SHOWN = 120


def verdict_words(o: Outcome) -> str:
    """An outcome in words: "eligible", "excluded: not a randomised trial", "conflict: …"."""
    if o.row is not None:
        if o.row.verdict == "excluded":
            return f"excluded: {reason_words(o.reason, o.note, limit=NOTE_SHOWN)}"
        return row_words(o.row)
    return STATE_WORDS[o.state]


def row_words(row: FullTextAssessment) -> str:
    """One judgement in words: "eligible", "excluded: not a randomised trial", "excluded:
    other reason: single-arm phase 2"."""
    if row.verdict == "excluded":
        return f"excluded: {reason_words(row.reason, row.note, limit=NOTE_SHOWN)}"
    return VERDICTS.get(row.verdict, row.verdict)


def reason_words(reason: str | None, note: str | None, *, limit: int | None = None) -> str:
    """A reason for exclusion in words. For "other" the reason is the assessor's note, on one
    line (shortened to ``limit`` characters at a word boundary when given): "other reason
    (see the note)" pointed at a note that lists, digests and exports do not show."""
    if reason == "other" and note and note.strip():
        text = " ".join(note.split())
        return f"other reason: {shorten(text, limit) if limit else text}"
    return reason_label(reason)


STATE_WORDS: dict[str, str] = {
    "awaiting": "awaiting assessment",
    "awaiting_second": "awaiting a second assessor",
    "conflict": "conflict: the two assessors disagree",
}


@dataclass(frozen=True)
class FullTextCounts:
    """Where the reports sought for retrieval stand. ``sought = not_retrieved + awaiting +
    assessed`` and ``assessed = eligible + sum(excluded.values())``; ``awaiting`` counts every
    report not settled yet, of which ``awaiting_second`` have one of two votes and
    ``conflicts`` two that differ."""

    sought: int
    not_retrieved: int
    awaiting: int
    eligible: int
    excluded: Mapping[str, int] = field(default_factory=dict)  # every reason, 0 included
    awaiting_second: int = 0
    conflicts: int = 0

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())

    @property
    def assessed(self) -> int:
        return self.eligible + self.excluded_total

    def to_json(self) -> dict[str, Any]:
        return {"sought": self.sought, "not_retrieved": self.not_retrieved,
                "awaiting": self.awaiting, "awaiting_second": self.awaiting_second,
                "conflicts": self.conflicts, "assessed": self.assessed,
                "eligible": self.eligible, "excluded": self.excluded_total,
                "excluded_by_reason": dict(self.excluded)}


def fulltext_counts(session: Session, *, since: datetime | None = None) -> FullTextCounts:
    """The full-text stage in numbers (see :class:`FullTextCounts`) over the reports sought
    (:func:`sought_pmids`: the previous version's reports are not among them, as the PRISMA
    flow removes them). With ``since``, only reports settled after it count as eligible /
    excluded / not retrieved (``sought`` and the unsettled ones are states, reported as they
    are now)."""
    return count_outcomes(outcomes(session, sought_pmids(session)), since=since)


def count_outcomes(found: Mapping[int, Outcome], *,
                   since: datetime | None = None) -> FullTextCounts:
    """:func:`fulltext_counts` of the reports sought whose outcomes are ``found`` (for a
    caller that reads the outcomes for something else too)."""
    states: Counter[str] = Counter()
    by: Counter[tuple[str, str | None]] = Counter()
    for o in found.values():
        states[o.state] += 1
        if o.row is not None and (since is None or o.row.created_at > since):
            by[(o.row.verdict, o.reason)] += 1
    excluded = {code: by.get(("excluded", code), 0) for code in REASONS}
    # A reason code no longer in REASONS (renamed in a later version) still counts, as itself.
    for (verdict, code), n in by.items():
        if verdict == "excluded" and code not in excluded:
            excluded[str(code)] = n
    return FullTextCounts(
        sought=len(found),
        not_retrieved=sum(n for (v, _), n in by.items() if v == "not_retrieved"),
        awaiting=len(found) - states["resolved"],
        eligible=sum(n for (v, _), n in by.items() if v == "eligible"),
        excluded=excluded, awaiting_second=states["awaiting_second"],
        conflicts=states["conflict"])


#: Where a record's trial links and its place in the flow disagree (:func:`link_problem`,
#: :func:`record_link_problem`), in words. A trial's report counts among the PRISMA flow's
#: included reports only once its record passed title/abstract screening and was settled
#: eligible at full text, and is not deleted; each other linked record has its problem.
LINK_PROBLEMS: dict[str, str] = {
    "unlinked": "eligible, not linked to a trial",
    "ruled_out": "a trial's report, though excluded or not retrieved at full text",
    "awaiting": "a trial's report whose full-text assessment is not settled",
    "unscreened": "a trial's report with no title/abstract decision",
    "excluded_at_screening": "a trial's report excluded at title/abstract screening",
    "deleted": "a trial's report deleted from PubMed",
}


def link_problem(o: Outcome, linked: bool) -> str | None:
    """Where a report sought's full-text outcome and its trial links disagree (None when they
    agree, or it is linked to no trial and not settled): ``"unlinked"`` — eligible, but no
    trial has the report, so its numbers are not in the analyses yet; ``"ruled_out"`` —
    excluded or not retrieved, yet a trial's report, so its numbers may be in the analyses
    although the review ruled it out; ``"awaiting"`` — a trial's report whose full text is
    not settled yet, so the PRISMA flow does not count it as included yet."""
    if linked and o.state != "resolved":
        return "awaiting"
    if o.state != "resolved":
        return None
    if o.verdict == "eligible" and not linked:
        return "unlinked"
    if o.verdict in RULED_OUT and linked:
        return "ruled_out"
    return None


def record_link_problem(record: Record, o: Outcome, *, linked: bool,
                        rule: SoughtRule) -> str | None:
    """:func:`link_problem` of any record (a key of :data:`LINK_PROBLEMS`, or None): a trial's
    report not sought for retrieval is ``"deleted"``, ``"unscreened"`` or
    ``"excluded_at_screening"`` — its numbers are pooled once verified while the PRISMA flow
    does not count it as included. A previous version's report has none: that review
    included it."""
    if rule.is_previous_report(record.pmid):
        return None
    if rule.is_sought(record):
        return link_problem(o, linked)
    if not linked:
        return None
    if record.deleted:
        return "deleted"
    return "excluded_at_screening" if record.decision == "exclude" else "unscreened"


def linked_pmids(session: Session) -> set[int]:
    """Every PMID some trial has as a report."""
    return {int(p) for p in session.exec(select(TrialReport.pmid).distinct())
            if p is not None}


def included_report_pmids(session: Session) -> set[int]:
    """The reports the PRISMA flow counts as included through this review (its last box's
    new reports): PMIDs a trial has as a report whose record is sought for retrieval (passed
    title/abstract screening, not deleted, not a previous version's report) and settled
    eligible at full text. Each PMID once, however many trials have it."""
    linked = linked_pmids(session)
    return {p for p, o in outcomes(session, [p for p in sought_pmids(session)
                                             if p in linked]).items()
            if o.state == "resolved" and o.verdict == "eligible"}


def linked_not_included(session: Session) -> list[tuple[Record, str]]:
    """The records some trial has as a report that the PRISMA flow does not count as included
    (:func:`record_link_problem`), by PMID, each with its problem."""
    linked = sorted(linked_pmids(session))
    rule = SoughtRule.for_session(session)
    found = outcomes(session, linked)
    out: list[tuple[Record, str]] = []
    for part in in_chunks(linked):
        for record in session.exec(select(Record).where(col(Record.pmid).in_(part))):
            problem = record_link_problem(record, found[record.pmid], linked=True, rule=rule)
            if problem is not None:
                out.append((record, problem))
    return sorted(out, key=lambda pair: pair[0].pmid)


def linked_though_ruled_out(session: Session) -> list[Record]:
    """The reports whose :func:`link_problem` is ``"ruled_out"``, by PMID."""
    return [record for record, problem in linked_not_included(session)
            if problem == "ruled_out"]


def fulltext_state(sought: bool, o: Outcome | None) -> tuple[str | None, str | None]:
    """A record's place in the full-text stage and, for an excluded report, its reason code:
    (None, None) when it takes no part (not ``sought``: :class:`SoughtRule`), else its settled
    verdict or its state (``awaiting``, ``awaiting_second``, ``conflict``)."""
    if not sought:
        return None, None
    o = o or AWAITING
    return o.verdict, o.reason


def reason_label(code: str | None) -> str:
    """What a reason code means. A code this version does not know (renamed since the row
    was stored) is still read as words, its underscores as spaces: a reader of the PRISMA
    flow or an export never meets ``wrong_population``."""
    if not code:
        return ""
    return REASONS.get(code) or code.replace("_", " ")


def assessment_json(row: FullTextAssessment, email: str | None) -> dict[str, Any]:
    return {"id": row.id, "pmid": row.pmid, "kind": row.kind, "verdict": row.verdict,
            "reason": row.reason,
            "reason_label": reason_label(row.reason) if row.reason else None,
            "note": row.note, "user": email, "created_at": row.created_at.isoformat()}


__all__ = [
    "AWAITING",
    "LINK_PROBLEMS",
    "MAX_NOTE",
    "PASSED",
    "REASONS",
    "RESOLUTION",
    "RULED_OUT",
    "SETTLING",
    "STATE_WORDS",
    "VERDICT",
    "VERDICTS",
    "VOTE",
    "FullTextCounts",
    "Outcome",
    "SoughtRule",
    "append",
    "assess",
    "assessable_record",
    "assessment_json",
    "check_assessment",
    "count_outcomes",
    "fulltext_counts",
    "fulltext_state",
    "included_report_pmids",
    "link_problem",
    "linked_not_included",
    "linked_pmids",
    "linked_though_ruled_out",
    "outcome",
    "outcomes",
    "reason_label",
    "reason_words",
    "record_link_problem",
    "repeated_assessment",
    "row_words",
    "sought_conditions",
    "sought_pmids",
    "verdict_words",
]
