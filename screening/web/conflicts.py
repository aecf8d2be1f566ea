"""Dual screening in the web app: who may resolve a record, resolutions, what a person may see
of other people's votes (blinding), the conflicts list and the screening state of a record.

The rules (``screening.agreement``), in the words of the curation guide:

- **Resolving.** A conflict is resolved by an admin or by a curator who did not vote on the
  record — a third person. A record already resolved (by agreement, by an earlier resolution
  or under single screening) changes only by a resolution of an admin. A record that fewer
  than two people have screened cannot be resolved: it needs its second vote first.
  A resolution needs a reason and is a ``Decision`` row of kind ``resolution``, audited as
  ``decision.resolve``.
- **Blinding.** Under dual screening, while a record waits for votes (unresolved, fewer than
  two screeners), the votes on it are shown only to the people who cast them. Once two people
  voted — agreeing or not — or the record is resolved, every vote is visible: the blind part
  of the screening is over, and whoever resolves a conflict must read both votes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from screening.agreement import (
    RESOLUTION,
    ScreeningAgreement,
    State,
    latest_votes,
    record_state,
    screening_agreement,
)
from screening.votes import (
    blind_pairs,
    in_conflict,
    latest_vote_rows,
    screener_counts,
    votes_on,
)
from screening.web.auth import has_role
from screening.web.decisions import (
    RecordStateError,
    check_decision,
    clean_reason,
    decision_history,
    locked_record,
    repeated_decision,
)
from store import vote_rule
from store.audit import audit
from store.errors import PermissionDeniedError, ValidationError
from store.models import BY_SCORE, Decision, Record, User
from store.repeats import Recorded
from store.screening_pool import in_screening_pool
from store.settings import is_dual_screening

log = logging.getLogger(__name__)

CONFLICTS_PAGE_SIZE = 200


# ----------------------------------------------------------------------------- resolving
def third_person_refusal(user: User, *, settled: bool, voted: bool, settled_text: str,
                         voted_text: str) -> str | None:
    """The one rule of who resolves, at both screening stages (None when ``user`` may): a
    curator's role is needed; an admin always may; a settled outcome changes only by an
    admin (``settled_text`` says so); a conflict is resolved by someone who did not vote in
    it (``voted_text``)."""
    if not has_role(user, "curator"):
        return f"{user.email} is a {user.role}; resolving needs the curator role"
    if has_role(user, "admin"):
        return None
    if settled:
        return settled_text
    if voted:
        return voted_text
    return None


def resolve_refusal(user: User, record: Record, screener_ids: set[int]) -> str | None:
    """Why ``user`` may not resolve ``record`` (None when they may); ``screener_ids`` are the
    people who voted on it."""
    if has_role(user, "curator") and record.decision is None and len(screener_ids) < 2:
        return None  # not a permission question: refused as a state error by the caller
    return third_person_refusal(
        user, settled=record.decision is not None, voted=user.id in screener_ids,
        settled_text=f"PMID {record.pmid} is already resolved ({record.decision}); only an "
                     "admin can change a resolved record",
        voted_text=f"you voted on PMID {record.pmid}; a conflict is resolved by an admin or a "
                   "curator who did not vote on it")


def record_resolution(session: Session, *, user: User, pmid: int, decision: str,
                      reason: str | None, screeners_per_record: int) -> Recorded[Decision]:
    """Store a resolution and make it the record's decision; the caller commits. The same
    resolution sent again by its author while it is still the newest decision on the record
    is not stored twice (``created`` false)."""
    check_decision(decision)
    reason = clean_reason(reason)
    if reason is None:
        raise ValidationError("a resolution needs a reason",
                              hint="say why, e.g. what the discussion or the full text showed")
    record = locked_record(session, pmid)
    # Before the state checks: a retried resolution finds the record resolved (by itself),
    # which for a curator would read as "only an admin can change a resolved record".
    same = repeated_decision(session, user=user, pmid=pmid, decision=decision, reason=reason,
                             kind=RESOLUTION, own_latest=False)
    if same is not None and record.decision == decision:
        log.info("PMID %s: %s's resolution %s repeated; nothing stored", pmid, user.id,
                 decision)
        return Recorded(same, created=False)
    votes = votes_on(session, [pmid])[pmid]
    screeners = latest_votes(votes)
    if record.decision is None and len(screeners) < 2:
        raise RecordStateError(
            f"PMID {pmid} has votes from {len(screeners)} of 2 screeners; only a conflict "
            "or a resolved record can be resolved",
            hint="it stays in the queue until a second curator votes")
    if record.decision is not None and not is_dual_screening(screeners_per_record):
        raise RecordStateError(
            f"PMID {pmid} is decided ({record.decision}) under single screening",
            hint="a new decision on the record page changes it")
    refusal = resolve_refusal(user, record, set(screeners))
    if refusal is not None:
        raise PermissionDeniedError(refusal, hint="ask an admin or another curator")
    previous = record.decision
    row = Decision(pmid=pmid, user_id=user.id, decision=decision, reason=reason,
                   kind=RESOLUTION, model_version_id=record.score_model_version_id,
                   score_shown=record.score, audit_sample=record.audit_sample)
    session.add(row)
    record.decision = decision
    session.add(record)
    session.flush()
    audit(session, "decision.resolve", actor=user.email, object_type="record", object_id=pmid,
          decision=decision, decision_id=row.id, previous=previous,
          votes={str(uid): v.decision for uid, v in screeners.items()})
    log.info("PMID %s resolved as %s by user %s (was %s)", pmid, decision, user.id, previous)
    return Recorded(row, created=True)


# ----------------------------------------------------------------------------- one record
@dataclass(frozen=True)
class RecordScreening:
    """What the record page and the API say about a record's screening, for one person."""

    dual: bool
    state: State
    screeners: int  # people who voted
    # screeners (each counted once, however often they changed their vote) whose votes this
    # person may not see yet (blinding)
    hidden_votes: int
    your_vote: str | None
    may_vote: bool
    may_resolve: bool

    @property
    def hidden_message(self) -> str:
        n = self.hidden_votes
        votes = "1 vote" if n == 1 else f"{n} votes"
        # a viewer (who may not vote) was told to vote
        until = "you vote" if self.may_vote else "a second screener votes"
        return f"{votes} recorded, hidden until {until}."

    def to_json(self) -> dict[str, Any]:
        return {"screeners_per_record": 2 if self.dual else 1, "state": self.state,
                "screeners": self.screeners, "hidden_votes": self.hidden_votes,
                "your_vote": self.your_vote, "may_vote": self.may_vote,
                "may_resolve": self.may_resolve}


def record_screening(session: Session, record: Record, user: User, *,
                     screeners_per_record: int) -> RecordScreening:
    votes = votes_on(session, [record.pmid])[record.pmid]
    latest = latest_votes(votes)
    dual = is_dual_screening(screeners_per_record)
    state = record_state(record.decision, len(latest))
    mine = latest.get(user.id) if user.id is not None else None
    hidden = 0
    if dual and state in ("unscreened", "awaiting_second") and mine is None:
        # Screeners, not vote rows: a first screener who changed their vote is still one
        # ("2 votes recorded" suggested two people, or told of the hesitation). Votes
        # without a user are no screener, but hidden all the same.
        hidden = len(latest) or len(votes)
    may_vote = vote_rule.may_vote(curator=has_role(user, "curator"), dual=dual, state=state,
                                  voted=mine is not None)
    # Under single screening a decided record changes by a new decision, not a resolution.
    resolvable = state == "conflict" or (state == "resolved" and dual)
    may_resolve = resolvable and resolve_refusal(user, record, set(latest)) is None
    return RecordScreening(dual=dual, state=state, screeners=len(latest), hidden_votes=hidden,
                           your_vote=mine.decision if mine else None, may_vote=may_vote,
                           may_resolve=may_resolve)


def current_state(session: Session, record: Record) -> State:
    """Where ``record`` stands now (after a vote, say), from its decision and its screeners."""
    return record_state(record.decision, screener_counts(session, [record.pmid])[record.pmid])


def settled_words(session: Session, record: Record) -> str:
    """How a resolved ``record`` came to be resolved, as a sentence for the flash after a
    vote on it: the newest resolution that gave its decision (who made it), else both
    screeners' agreeing votes, else (decided under single screening, or by a vote after a
    switch to it) that it is resolved. A vote sent again after a third person's resolution
    was told "Both screeners agree: resolved as exclude" of votes maybe and include."""
    decision = record.decision
    resolution = session.exec(
        select(Decision, User.email).join(User, col(Decision.user_id) == col(User.id),
                                          isouter=True)
        .where(Decision.pmid == record.pmid, Decision.kind == RESOLUTION)
        .order_by(col(Decision.id).desc())).first()
    if resolution is not None and resolution[0].decision == decision:
        by = f" by {resolution[1]}" if resolution[1] else ""
        return (f"The record was resolved as {decision} by a resolution{by}, which settles it "
                "whatever the votes.")
    latest = latest_votes(votes_on(session, [record.pmid])[record.pmid])
    if len(latest) >= 2 and {v.decision for v in latest.values()} == {decision}:
        return f"Both screeners agree: resolved as {decision}."
    return f"The record is already resolved as {decision}; votes no longer change it."


def visible_history(session: Session, pmid: int,
                    screening: RecordScreening) -> list[tuple[Decision, str | None]]:
    """The record's decisions, newest first — none while the votes are hidden from this
    person (blinding)."""
    return [] if screening.hidden_votes else decision_history(session, pmid)


def decision_json(row: Decision, email: str | None) -> dict[str, Any]:
    return {"id": row.id, "pmid": row.pmid, "kind": row.kind, "decision": row.decision,
            "reason": row.reason, "user": email, "model_version_id": row.model_version_id,
            "score_shown": row.score_shown, "rank_shown": row.rank_shown,
            "audit_sample": row.audit_sample, "created_at": row.created_at.isoformat()}


# ----------------------------------------------------------------------------- conflicts
@dataclass(frozen=True)
class ConflictView:
    record: Record
    votes: list[tuple[Decision, str | None]]  # each screener's latest vote, oldest first
    may_resolve: bool
    refusal: str | None

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {"pmid": r.pmid, "title": r.title, "journal": r.journal, "year": r.year,
                "score": r.score, "flagged": r.flagged, "audit_sample": r.audit_sample,
                "votes": [decision_json(d, e) for d, e in self.votes],
                "may_resolve": self.may_resolve}


def _open_conflict() -> tuple[Any, ...]:
    """Conditions on ``Record`` of a conflict that waits for a resolution: live, in the
    screening pool (a previous version's report is not screened again, so a conflict on it
    decides nothing and counts nowhere, as in the queue's and the health's counts)."""
    return col(Record.deleted).is_(False), in_screening_pool(), in_conflict()


def conflict_count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Record)
                            .where(*_open_conflict())).one())


def list_conflicts(session: Session, user: User, *, limit: int = CONFLICTS_PAGE_SIZE,
                   offset: int = 0) -> list[ConflictView]:
    """Live records of the screening pool in conflict, highest score first (then by PMID, so
    pages never overlap), ``limit`` from ``offset``, with every screener's latest vote."""
    records = session.exec(select(Record).where(*_open_conflict())
                           .order_by(*BY_SCORE)
                           .offset(offset).limit(limit)).all()
    rows = latest_vote_rows(session, [r.pmid for r in records])
    out = []
    for record in records:
        votes = rows[record.pmid]
        refusal = resolve_refusal(user, record,
                                  {d.user_id for d, _ in votes if d.user_id is not None})
        out.append(ConflictView(record=record, votes=votes, may_resolve=refusal is None,
                                refusal=refusal))
    return out


def agreement(session: Session) -> ScreeningAgreement:
    """Cohen's kappa and raw agreement of the blind votes of every record of the screening
    pool screened twice (``screening.votes.blind_pairs``)."""
    return screening_agreement(blind_pairs(session))
