"""The full-text stage on the pages and in the API: what a record's page shows and who may
assess or resolve it, resolutions, the list of reports sought for ``/fulltext`` and the
agreement of the two assessors' blind votes. The rules and counts are ``store.fulltext``'s;
what is the web app's here is who may do what (roles) and what a person may see (blinding:
while a report waits for its second assessor, its vote is shown only to its author).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from screening.agreement import Agreement, Vote, blind_pair, cohen_kappa
from screening.web.auth import has_role
from screening.web.conflicts import third_person_refusal
from store.batches import in_chunks
from store.errors import PermissionDeniedError, StateError, ValidationError
from store.fulltext import (
    AWAITING,
    LINK_PROBLEMS,
    REASONS,
    RESOLUTION,
    VERDICTS,
    VOTE,
    Outcome,
    SoughtRule,
    append,
    assessable_record,
    check_assessment,
    link_problem,
    linked_pmids,
    outcome,
    outcomes,
    reason_label,
    record_link_problem,
    repeated_assessment,
    row_words,
    sought_pmids,
    verdict_words,
)
from store.models import FullTextAssessment, Record, Trial, TrialReport, User
from store.repeats import Recorded
from store.screening_pool import previous_reports_query
from store.vote_rule import may_vote

#: The list's filters: what each shows.
SHOWS = {"yours": "awaiting your vote", "awaiting": "not settled yet", "conflict": "conflicts",
         "mismatch": "verdict and trial links disagree", "all": "every report sought"}
#: The ``show`` query parameter's pattern, for the page and the API alike.
SHOW_PATTERN = "^(" + "|".join(SHOWS) + ")$"
LIST_LIMIT = 500
#: The list's order: what needs a person first.
_ORDER = {"conflict": 0, "awaiting": 1, "awaiting_second": 2, "resolved": 3}


# ----------------------------------------------------------------------------- who may
def resolve_refusal(user: User, o: Outcome) -> str | None:
    """Why ``user`` may not resolve a report in outcome ``o`` (None when they may): an admin
    always may; a curator only a conflict they did not vote in."""
    return third_person_refusal(
        user, settled=o.state == "resolved", voted=o.voted(user.id) is not None,
        settled_text=f"the full-text assessment is settled ({verdict_words(o)}); only an "
                     "admin can change a settled report",
        voted_text="you assessed this report; a conflict is resolved by an admin or a curator "
                   "who did not assess it")


def may_assess(user: User, o: Outcome, *, dual: bool) -> bool:
    """Whether ``user`` may record a full-text judgement now (``store.vote_rule``: with one
    assessor any curator, the newest verdict counting; with two, until the report is settled,
    and in a conflict only its two assessors)."""
    return may_vote(curator=has_role(user, "curator"), dual=dual, state=o.state,
                    voted=o.voted(user.id) is not None)


def resolve(session: Session, *, user: User, pmid: int, verdict: str, reason: str | None,
            note: str | None, dual: bool) -> Recorded[FullTextAssessment]:
    """A resolution of a full-text conflict (or an admin's change of a settled report): the
    verdict, its reason, and a note saying why. The caller commits. The same resolution sent
    again by its author while it is still the newest judgement is not stored twice."""
    if not dual:
        raise StateError(
            f"PMID {pmid} is assessed by one person (MMLR_SCREENERS_PER_RECORD=1); a new "
            "verdict changes it, not a resolution", hint="record a verdict on its page")
    verdict, reason, note = check_assessment(verdict, reason, note)
    if note is None:
        raise ValidationError("a resolution needs a note saying why",
                              hint="e.g. what the discussion or the protocol decided")
    record = assessable_record(session, pmid)
    # Before the checks of the report's state: a retry finds it settled (by itself).
    same = repeated_assessment(session, user=user, pmid=pmid, kind=RESOLUTION,
                               verdict=verdict, reason=reason, note=note)
    if same is not None:
        return Recorded(same, created=False)
    o = outcomes(session, [pmid])[pmid]
    if o.state in ("awaiting", "awaiting_second"):
        raise StateError(
            f"PMID {pmid} has full-text votes from {len(o.votes)} of 2 assessors; only a "
            "conflict or a settled report can be resolved",
            hint="it needs its second assessor first")
    refusal = resolve_refusal(user, o)
    if refusal is not None:
        raise PermissionDeniedError(refusal, hint="ask an admin or another curator")
    return Recorded(append(session, user=user, record=record, verdict=verdict, reason=reason,
                           note=note, kind=RESOLUTION), created=True)


# ----------------------------------------------------------------------------- one record
def _emails(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {int(i): e for i, e in session.exec(select(User.id, User.email)
                                               .where(col(User.id).in_(sorted(ids))))
            if i is not None}


@dataclass(frozen=True)
class RecordFullText:
    """What the record page (and the API) show of a record's full-text stage to one person."""

    applies: bool  # sought for retrieval (store.fulltext.SoughtRule)
    dual: bool
    outcome: Outcome
    history: Sequence[tuple[FullTextAssessment, str | None, str]]  # newest first, visible only
    # assessors (each counted once) whose votes this person may not see yet (blinding)
    hidden_votes: int
    may_assess: bool
    may_resolve: bool
    refusal: str | None
    yours: FullTextAssessment | None = None  # this person's latest vote
    emails: dict[int, str] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=lambda: dict(VERDICTS))
    reasons: dict[str, str] = field(default_factory=lambda: dict(REASONS))

    @property
    def current(self) -> FullTextAssessment | None:
        return self.outcome.row

    @property
    def current_text(self) -> str:
        return verdict_words(self.outcome)

    @property
    def may_judge_eligible_on_link(self) -> bool:
        """Whether linking the record to a trial may also record this person's first
        judgement of it, *eligible*: they may assess it and have not judged it yet."""
        return self.may_assess and self.outcome.state in ("awaiting", "awaiting_second") \
            and self.yours is None

    def vote_views(self) -> list[tuple[FullTextAssessment, str, str]]:
        """The assessors' latest votes with who cast them, once they are no longer blind."""
        if self.hidden_votes:
            return []
        return [(v, self.emails.get(v.user_id or -1, "?"), row_words(v))
                for v in self.outcome.votes]

    def to_json(self) -> dict[str, Any]:
        mine = self.yours
        return {"applies": self.applies, "assessors_per_report": 2 if self.dual else 1,
                "state": self.outcome.state, "verdict": self.outcome.verdict,
                "reason": self.outcome.reason, "assessors": len(self.outcome.votes),
                "hidden_votes": self.hidden_votes,
                "your_vote": mine.verdict if mine else None,
                "votes": [{"user": e, "verdict": v.verdict, "reason": v.reason,
                           "note": v.note} for v, e, _ in self.vote_views()],
                "may_assess": self.may_assess, "may_resolve": self.may_resolve}


def record_fulltext(session: Session, record: Record, user: User, *,
                    dual: bool) -> RecordFullText:
    """The full-text stage of ``record`` as ``user`` may see it: every judgement newest first,
    except a vote still waiting for the second assessor, which only its author sees."""
    history = session.exec(
        select(FullTextAssessment, User.email)
        .join(User, col(User.id) == col(FullTextAssessment.user_id), isouter=True)
        .where(FullTextAssessment.pmid == record.pmid)
        .order_by(col(FullTextAssessment.id).desc())).all()
    o = outcome(row for row, _ in history)
    blind = o.state == "awaiting_second" and o.voted(user.id) is None
    # Assessors, not vote rows: one who changed their verdict while alone is still one.
    hidden = len({row.user_id for row, _ in history if blind and row.kind == VOTE})
    visible = [(row, email, row_words(row)) for row, email in history
               if not (blind and row.kind == VOTE)]
    applies = SoughtRule.for_session(session).is_sought(record)
    refusal = resolve_refusal(user, o) if dual else None
    resolvable = dual and applies and o.state in ("conflict", "resolved")
    return RecordFullText(
        applies=applies, dual=dual, outcome=o, history=visible, hidden_votes=hidden,
        may_assess=applies and may_assess(user, o, dual=dual),
        may_resolve=resolvable and refusal is None, refusal=refusal if resolvable else None,
        yours=o.voted(user.id),
        emails={row.user_id: email for row, email in history
                if row.user_id is not None and email is not None})


# ----------------------------------------------------------------------------- the list
@dataclass(frozen=True)
class SoughtReport:
    """A report sought for retrieval as the list shows it; or (``sought`` false, only in the
    mismatch list) a trial's report that is not sought — unscreened, excluded at
    title/abstract screening, or deleted — which the PRISMA flow does not count as included."""

    record: Record
    outcome: Outcome
    trials: list[tuple[int, str]]
    yours: FullTextAssessment | None = None  # the viewer's own vote
    votes: list[tuple[FullTextAssessment, str]] = field(default_factory=list)  # conflicts
    sought: bool = True

    @property
    def assessment(self) -> FullTextAssessment | None:
        """The judgement that settled the report (None until settled, or not sought)."""
        return self.outcome.row if self.sought else None

    @property
    def verdict(self) -> str:
        return self.outcome.verdict if self.sought else "not_sought"

    @property
    def text(self) -> str:
        if not self.sought:
            return "not sought for retrieval"
        return verdict_words(self.outcome)

    @property
    def problem(self) -> str | None:
        """Where the trial links and the flow disagree (a key of
        ``store.fulltext.LINK_PROBLEMS``), or None."""
        if not self.sought:
            return record_link_problem(self.record, AWAITING, linked=bool(self.trials),
                                       rule=_NOT_PREVIOUS)
        return link_problem(self.outcome, bool(self.trials))

    @property
    def problem_text(self) -> str | None:
        return LINK_PROBLEMS[self.problem] if self.problem else None

    @property
    def not_counted(self) -> bool:
        """A trial's report the PRISMA flow does not count as included, for a reason other
        than the two the list has badges of their own for."""
        return self.problem not in (None, "unlinked", "ruled_out")

    @property
    def unlinked(self) -> bool:
        """Eligible but not yet a report of any trial (``store.fulltext.link_problem``)."""
        return link_problem(self.outcome, bool(self.trials)) == "unlinked"

    @property
    def linked_though_excluded(self) -> bool:
        """Excluded or not retrieved, yet a trial's report (``link_problem``)."""
        return link_problem(self.outcome, bool(self.trials)) == "ruled_out"

    def to_json(self) -> dict[str, Any]:
        a = self.assessment
        return {"pmid": self.record.pmid, "title": self.record.title,
                "verdict": self.verdict, "reason": self.outcome.reason,
                "reason_label": reason_label(self.outcome.reason)
                if self.outcome.reason else None,
                "note": self.outcome.note if a else None,
                "assessed_at": a.created_at.isoformat() if a else None,
                "assessors": len(self.outcome.votes),
                "your_vote": self.yours.verdict if self.yours else None,
                "votes": [{"user": e, "verdict": v.verdict, "reason": v.reason}
                          for v, e in self.votes],
                "trials": [{"id": i, "name": n} for i, n in self.trials],
                "eligible_not_linked": self.unlinked,
                "linked_though_excluded": self.linked_though_excluded,
                "sought": self.sought, "link_problem": self.problem,
                "link_problem_text": self.problem_text,
                # PubMed marked it retracted: said beside the verdict (it was only on the
                # record page), since an eligible report may be pooled
                "retracted": bool(self.record.retracted)}


#: The list's rows not sought are never previous-version reports (those are left out before).
_NOT_PREVIOUS = SoughtRule(previous=frozenset())


def sought_reports(session: Session, show: str = "all", *, viewer: User | None = None,
                   offset: int = 0, limit: int = LIST_LIMIT) -> list[SoughtReport]:
    """The reports sought for retrieval (``store.fulltext.sought_pmids``: included, not
    deleted, not one of the previous version's reports): conflicts first, then the
    ones awaiting assessment, then those awaiting their second assessor, then the settled
    ones, each by PMID. ``show="awaiting"`` keeps the unsettled ones, ``show="yours"`` those
    of them still needing ``viewer``'s vote (two assessors), ``show="conflict"`` the
    conflicts, ``show="mismatch"`` the reports whose verdict and trial links disagree (eligible
    but linked to no trial; excluded, not retrieved or not settled but linked to one) and,
    first, the trials' reports not sought at all (unscreened, excluded at title/abstract
    screening, deleted): the reports the PRISMA flow does not count as included. A conflict
    carries its votes (no longer blind); ``viewer`` sees their own vote. At most ``limit``,
    from the ``offset``-th on (a page of the list)."""
    pmids = sought_pmids(session)
    states = outcomes(session, pmids)
    if show == "awaiting":
        pmids = [p for p in pmids if states[p].state != "resolved"]
    elif show == "conflict":
        pmids = [p for p in pmids if states[p].state == "conflict"]
    elif show == "yours":  # two assessors: the reports still needing this person's vote
        pmids = [p for p in pmids if states[p].state in ("awaiting", "awaiting_second")
                 and (viewer is None or states[p].voted(viewer.id) is None)]
    links = _trial_links(session, pmids)
    not_sought: set[int] = set()
    if show == "mismatch":
        pmids = [p for p in pmids if link_problem(states[p], bool(links.get(p))) is not None]
        # The trials' reports whose records are not sought (unscreened, excluded at
        # title/abstract screening, deleted): pooled, yet not included in the PRISMA flow.
        rule = SoughtRule.for_session(session)
        others = sorted(linked_pmids(session) - set(states) - rule.previous)
        for part in in_chunks(others):
            for record in session.exec(select(Record).where(col(Record.pmid).in_(part))):
                if record_link_problem(record, AWAITING, linked=True, rule=rule):
                    not_sought.add(record.pmid)
        links.update(_trial_links(session, sorted(not_sought)))
        pmids = [*pmids, *not_sought]
    # Not sought first (nobody will meet them elsewhere), then what needs a person first.
    pmids = sorted(pmids, key=lambda p: (-1 if p in not_sought else _ORDER[states[p].state],
                                         p))[offset:offset + limit]
    records = {r.pmid: r for r in session.exec(select(Record)
                                               .where(col(Record.pmid).in_(pmids)))}
    emails = _emails(session, {v.user_id for p in pmids
                               if p not in not_sought and states[p].state == "conflict"
                               for v in states[p].votes if v.user_id is not None})
    return [SoughtReport(records[p], AWAITING, links.get(p, []), sought=False)
            if p in not_sought else SoughtReport(
        records[p], states[p], links.get(p, []),
        yours=states[p].voted(viewer.id) if viewer is not None else None,
        votes=[(v, emails.get(v.user_id or -1, "?")) for v in states[p].votes]
        if states[p].state == "conflict" else []) for p in pmids]


def _trial_links(session: Session, pmids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """The trials each of these records is a report of, by PMID."""
    links: dict[int, list[tuple[int, str]]] = {}
    for part in in_chunks(pmids):
        for pmid, trial_id, name in session.exec(
                select(TrialReport.pmid, Trial.id, Trial.name).join(Trial)
                .where(col(TrialReport.pmid).in_(part))):
            if pmid is not None and trial_id is not None:  # the IN filter leaves no None
                links.setdefault(int(pmid), []).append((int(trial_id), name))
    return links


# ----------------------------------------------------------------------------- agreement
def fulltext_agreement(session: Session) -> Agreement:
    """Cohen's kappa over the three verdicts (eligible, excluded, not retrieved) of the blind
    votes of the first two assessors of a report (``screening.agreement.blind_pair``, as at
    title/abstract screening: a vote changed after seeing the other one is not independent,
    one corrected before the other voted still is). Votes on the
    previous version's reports are left out: those are not sought, and their votes count
    nowhere (as the title/abstract agreement leaves out their screening votes)."""
    by_pmid: dict[int, list[Vote]] = {}
    for row_id, pmid, user_id, verdict in session.exec(
            select(FullTextAssessment.id, FullTextAssessment.pmid, FullTextAssessment.user_id,
                   FullTextAssessment.verdict)
            .where(FullTextAssessment.kind == VOTE,
                   col(FullTextAssessment.pmid).not_in(previous_reports_query()))):
        by_pmid.setdefault(int(pmid), []).append(
            Vote(id=int(row_id or 0), user_id=user_id, decision=verdict))
    pairs = [pair for votes in by_pmid.values() if (pair := blind_pair(votes)) is not None]
    return cohen_kappa(pairs, tuple(VERDICTS))


__all__ = ["LIST_LIMIT", "SHOWS", "SHOW_PATTERN", "RecordFullText", "SoughtReport",
           "fulltext_agreement", "may_assess", "record_fulltext", "resolve", "resolve_refusal",
           "sought_reports"]
