"""The review queue: records in the active model's certainty order (highest score first).

Undecided records of the random audit sample are interleaved — one every ``AUDIT_EVERY``
positions, in the order of their draw rather than by score, so that the part of the sample
screened so far is as random as the whole — so low-score records reach curators without
waiting for the queue to drain;
each is marked ``audit_sample`` so the page can say why it is there. The one-click flow
("Exclude, next", ``next_record``) keeps that rate for each person: after ``AUDIT_EVERY - 1``
of their decisions since their last on an audit record it serves a waiting audit record
instead of the top of the queue (the top is always a main record while any remain, so
"open the top" alone would serve the audit sample only once everything else is decided).
Deleted records and the previous version's reports (outside the screening pool,
``store.screening_pool``) never appear; decided records only with ``include_decided``.

Under dual screening the queue is per screener (``screener_id``): it leaves out the records
that person has voted on and the conflicts (they wait for a resolution, not another vote),
but keeps records one other person voted on — they need a second screener. Those carry
``votes=1``; the order and the audit interleaving are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import and_, func
from sqlmodel import Session, col, select

from screening.agreement import DECISION, VOTE
from screening.draw import audit_draw
from screening.votes import hidden_from_queue, screener_counts
from store.models import BY_SCORE, PENDING_AUDIT, Decision, Record
from store.planner import likely
from store.screening_pool import in_screening_pool
from store.trial_match import MatchMemo, TrialMatch, matches_for_records

AUDIT_EVERY = 10
#: Records on one page of the queue (the web page; the stopping test's "top of the queue").
PAGE_SIZE = 50
M = TypeVar("M")
A = TypeVar("A")


def interleave(main: Sequence[M], audit: Sequence[A], need: int) -> list[M | A]:
    """The first ``need`` places of the queue: an audit item at every ``AUDIT_EVERY``-th place
    while any remain, the main order elsewhere, and audit items once the main order runs out."""
    merged: list[M | A] = []
    mi = ai = 0
    while len(merged) < need and (mi < len(main) or ai < len(audit)):
        slot_for_audit = (len(merged) + 1) % AUDIT_EVERY == 0
        if (slot_for_audit and ai < len(audit)) or mi >= len(main):
            merged.append(audit[ai])
            ai += 1
        else:
            merged.append(main[mi])
            mi += 1
    return merged


@dataclass(frozen=True)
class QueueItem:
    pmid: int
    title: str
    journal: str | None
    year: int | None
    score: float | None
    flagged: bool
    audit_sample: bool
    model_version_id: int | None
    rank: int
    decision: str | None = None
    votes: int = 0  # people who voted on it (counted under dual screening only)
    #: trials of the review this record strongly matches (``store.trial_match``)
    trials: tuple[TrialMatch, ...] = ()


def _item(r: Record, rank: int, votes: int, trials: list[TrialMatch]) -> QueueItem:
    return QueueItem(pmid=r.pmid, title=r.title, journal=r.journal, year=r.year, score=r.score,
                     flagged=r.flagged, audit_sample=r.audit_sample,
                     model_version_id=r.score_model_version_id, rank=rank, decision=r.decision,
                     votes=votes, trials=tuple(m for m in trials if m.strong))


def _with_records(session: Session, page: list[Record | int]) -> list[Record]:
    """``page`` with each PMID (a waiting audit record) replaced by its record: only the
    audit records of the page are read in full."""
    pmids = [p for p in page if isinstance(p, int)]
    rows = {r.pmid: r for r in session.exec(select(Record).where(col(Record.pmid).in_(pmids)))
            } if pmids else {}
    return [r if isinstance(r, Record) else rows[r] for r in page if not isinstance(r, int)
            or r in rows]


def queue(session: Session, *, limit: int = 50, offset: int = 0,
          include_decided: bool = False, screener_id: int | None = None,
          memo: MatchMemo | None = None) -> list[QueueItem]:
    """One page of the queue (ranks are 1-based positions in the whole queue); with
    ``screener_id``, that person's dual-screening queue (module docstring); ``memo`` keeps
    the records' trial matches between pages (``store.trial_match.MatchMemo``)."""
    limit, offset = max(0, int(limit)), max(0, int(offset))
    need = offset + limit
    if need == 0:
        return []
    # The previous version's reports are already included: never screened again, whatever
    # their score (the classifier learns from them, so they would lead the queue).
    # likely(): nearly every record is live and most await a decision; marked so, SQLite
    # walks the score index and stops at the page instead of sorting every waiting record
    # (store.planner).
    live = likely(col(Record.deleted).is_(False)) & in_screening_pool()
    audit_sample, undecided = PENDING_AUDIT
    yours = () if screener_id is None else (~hidden_from_queue(screener_id),)
    pending_audit = and_(audit_sample, undecided, *yours)
    # Served by migration 0018's partial index of the waiting audit records. SQLite picks it
    # only once told that the pending condition is common (likely()) and asked for the
    # index's order: it would otherwise read every undecided (or live) record through the
    # ``decision`` (or ``deleted``) index. Their PMIDs only, all of them, served in the order
    # of their draw (the PMID hash that put them in the sample), not by score: the recall
    # estimate takes the audit records decided so far as a random sample, and served by
    # score a partly screened audit would lean toward the higher scores. A few percent of
    # the low scores: sorting them here costs little.
    waiting = session.exec(select(Record.pmid).where(live, audit_sample, likely(undecided),
                                                     *yours).order_by(*BY_SCORE)).all()
    audit = sorted((int(p) for p in waiting), key=audit_draw)[:need]
    main_stmt = select(Record).where(live, ~pending_audit)
    if not include_decided:
        main_stmt = main_stmt.where(likely(col(Record.decision).is_(None)))
        if screener_id is not None:
            main_stmt = main_stmt.where(~hidden_from_queue(screener_id))
    main = list(session.exec(main_stmt.order_by(*BY_SCORE).limit(need)))
    page = _with_records(session, interleave(main, audit, need)[offset:need])
    votes = screener_counts(session, [r.pmid for r in page]) if screener_id is not None else {}
    # A new report of a trial already in the review is marked wherever it ranks: it may
    # carry a new data cut, whatever its score.
    matches = matches_for_records(session, page, memo=memo)
    return [_item(r, offset + i + 1, votes.get(r.pmid, 0), matches.get(r.pmid, []))
            for i, r in enumerate(page)]


def decided_since_audit(session: Session, user_id: int) -> int:
    """``user_id``'s screening decisions (votes, or single screening's decisions) since their
    latest decision on a record of the audit sample (all of them when there is none): read
    from the stored decisions, so the count holds across requests, processes and restarts,
    and is each person's own."""
    last = session.exec(select(func.max(Decision.id)).where(
        Decision.user_id == user_id, col(Decision.audit_sample).is_(True))).one()
    stmt = select(func.count()).select_from(Decision).where(
        Decision.user_id == user_id, col(Decision.kind).in_((VOTE, DECISION)))
    if last is not None:
        stmt = stmt.where(col(Decision.id) > last)
    return int(session.exec(stmt).one())


def next_record(session: Session, user_id: int, *,
                screener_id: int | None = None) -> QueueItem | None:
    """The record the one-click flow opens next for ``user_id`` (None: nothing waits): the
    first waiting audit record once they decided ``AUDIT_EVERY - 1`` records since their last
    audit record, else the top of the queue (``screener_id``: their dual-screening queue). So
    one record in ``AUDIT_EVERY`` decided through the flow is from the audit sample, as on the
    queue page, and the recall estimate grows as the screening goes."""
    if decided_since_audit(session, user_id) < AUDIT_EVERY - 1:
        rows = queue(session, limit=1, screener_id=screener_id)
        return rows[0] if rows else None
    # The first AUDIT_EVERY places hold the first waiting audit record when there is one.
    rows = queue(session, limit=AUDIT_EVERY, screener_id=screener_id)
    return next((r for r in rows if r.audit_sample), rows[0] if rows else None)
