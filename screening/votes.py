"""Reading screening votes from the database (the rules themselves are in
``screening.agreement``).

Under dual screening a record's state follows from two facts the database holds:
``Record.decision`` (the resolved outcome, kept up to date by the web app) and how many
different people voted on it. An unresolved record with votes from two or more people is a
conflict; this module builds those conditions as SQL so the queue stays one query.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from screening.agreement import INCLUDE_LIKE, VOTE, Vote, blind_pair, latest_votes
from store.batches import in_chunks
from store.models import Decision, Record, User
from store.screening_pool import previous_reports_query


def _is_vote() -> Any:
    return col(Decision.kind) == VOTE


def voted_by(user_id: int) -> Any:
    """SELECT of the PMIDs ``user_id`` has voted on."""
    return select(Decision.pmid).where(_is_vote(), col(Decision.user_id) == user_id)


def screened_twice() -> Any:
    """SELECT of the PMIDs with votes from at least two different people."""
    return (select(Decision.pmid).where(_is_vote(), col(Decision.user_id).is_not(None))
            .group_by(col(Decision.pmid))
            .having(func.count(func.distinct(Decision.user_id)) >= 2))


def screened_once() -> Any:
    """SELECT of the PMIDs with votes from exactly one person."""
    return (select(Decision.pmid).where(_is_vote(), col(Decision.user_id).is_not(None))
            .group_by(col(Decision.pmid))
            .having(func.count(func.distinct(Decision.user_id)) == 1))


def screened_by_anyone() -> Any:
    """SELECT of the PMIDs with a vote from at least one person."""
    return select(Decision.pmid).where(_is_vote(), col(Decision.user_id).is_not(None))


def provisionally_included() -> Any:
    """SELECT of the PMIDs where some screener's latest vote is include or maybe: the records
    an unresolved record's provisional label (``screening.agreement.provisional_label``) calls
    include (recall first). Only meaningful for records without a resolved decision."""
    latest = (select(func.max(Decision.id)).where(_is_vote(), col(Decision.user_id).is_not(None))
              .group_by(col(Decision.pmid), col(Decision.user_id)))
    return select(Decision.pmid).where(col(Decision.id).in_(latest),
                                       col(Decision.decision).in_(sorted(INCLUDE_LIKE)))


def in_conflict() -> Any:
    """WHERE condition on Record: unresolved, and two or more people voted (so they differ)."""
    return col(Record.decision).is_(None) & col(Record.pmid).in_(screened_twice())


def hidden_from_queue(user_id: int) -> Any:
    """WHERE condition on Record: not in ``user_id``'s dual-screening queue (they voted on it,
    or it is a conflict that waits for a resolution rather than another vote)."""
    return col(Record.pmid).in_(voted_by(user_id)) | col(Record.pmid).in_(screened_twice())


def votes_on(session: Session, pmids: Iterable[int]) -> dict[int, list[Vote]]:
    """Every vote on these records, oldest first, per PMID."""
    wanted = sorted(set(pmids))
    out: dict[int, list[Vote]] = {p: [] for p in wanted}
    for part in in_chunks(wanted):
        rows = session.exec(select(Decision.id, Decision.pmid, Decision.user_id,
                                   Decision.decision)
                            .where(_is_vote(), col(Decision.pmid).in_(part))
                            .order_by(col(Decision.id))).all()
        for row_id, pmid, user_id, decision in rows:
            out[int(pmid)].append(Vote(id=int(row_id or 0), user_id=user_id, decision=decision))
    return out


def screener_counts(session: Session, pmids: Iterable[int]) -> dict[int, int]:
    """How many different people voted on each of these records (0 when nobody did)."""
    return {p: len(latest_votes(v)) for p, v in votes_on(session, pmids).items()}


def latest_vote_rows(session: Session,
                     pmids: Iterable[int]) -> dict[int, list[tuple[Decision, str | None]]]:
    """Each screener's latest vote on these records with their e-mail, oldest first, per
    PMID."""
    wanted = sorted(set(pmids))
    out: dict[int, list[tuple[Decision, str | None]]] = {}
    for part in in_chunks(wanted):
        rows = session.exec(select(Decision, User.email)
                            .join(User, col(Decision.user_id) == col(User.id), isouter=True)
                            .where(col(Decision.pmid).in_(part), _is_vote())
                            .order_by(col(Decision.id))).all()
        latest: dict[tuple[int, int], tuple[Decision, str | None]] = {}
        for row, email in rows:
            if row.user_id is not None:
                latest[(row.pmid, row.user_id)] = (row, email)
        for (pmid, _), pair in latest.items():
            out.setdefault(pmid, []).append(pair)
    return {p: sorted(out.get(p, []), key=lambda pair: pair[0].id or 0) for p in wanted}


def user_votes(session: Session, user_id: int, pmids: Iterable[int]) -> dict[int, str]:
    """``user_id``'s latest vote on each of these records that they voted on."""
    wanted = sorted(set(pmids))
    out: dict[int, str] = {}
    for part in in_chunks(wanted):
        rows = session.exec(select(Decision.pmid, Decision.decision)
                            .where(_is_vote(), col(Decision.user_id) == user_id,
                                   col(Decision.pmid).in_(part))
                            .order_by(col(Decision.id))).all()
        for pmid, decision in rows:
            out[int(pmid)] = decision
    return out


def blind_pairs(session: Session) -> list[tuple[str, str]]:
    """The blind vote pairs of every record of the screening pool screened by two or more
    people: votes on a previous version's report screen nothing (``store.screening_pool``),
    so they are not part of the review's screening agreement either. A record deleted from
    PubMed since keeps its pair: it was screened blind like any other."""
    pmids = [int(p) for p in session.exec(
        screened_twice().where(col(Decision.pmid).not_in(previous_reports_query()))).all()]
    return [pair for votes in votes_on(session, pmids).values()
            if (pair := blind_pair(votes)) is not None]
