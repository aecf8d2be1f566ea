"""What the queue page shows beside the queue itself (``screening.queue.queue``, the active
learner's order with the audit sample interleaved): counts, health and progress."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from screening.health import count_live, health_figures, pool_figures
from screening.health import screening_health as _health
from screening.stopping import TARGET_RECALL
from screening.votes import hidden_from_queue, in_conflict, screened_once, voted_by
from store.locks import held_by_a_live_process
from store.models import Decision, KeyValue, Record
from store.screening_pool import in_screening_pool, previous_reports_query

log = logging.getLogger(__name__)


def queue_figures(*, screener_id: int | None = None) -> dict[str, Any]:
    """What :func:`queue_counts` reads of the screening pool (for ``pool_figures``)."""
    undecided = col(Record.decision).is_(None)
    flagged = col(Record.flagged).is_(True)
    named: dict[str, Any] = {"records": None, "undecided": undecided,
                             "flagged": and_(undecided, flagged)}
    if screener_id is not None:
        yours = ~hidden_from_queue(screener_id)
        named.update({
            "awaiting_you": and_(undecided, yours),
            "awaiting_you_flagged": and_(undecided, yours, flagged),
            "awaiting_you_second": and_(undecided, yours, col(Record.pmid).in_(screened_once())),
            "yours_awaiting_second": and_(undecided,
                                          col(Record.pmid).in_(voted_by(screener_id)),
                                          col(Record.pmid).in_(screened_once())),
            "conflicts": in_conflict(),
            "resolved": col(Record.decision).is_not(None),
        })
    return named


def queue_counts(session: Session, *, screener_id: int | None = None,
                 figures: Mapping[str, Any] | None = None) -> dict[str, int]:
    """The queue page's counts; with ``screener_id`` (dual screening) also the ones that make
    sense per person: awaiting your vote (and how many of those already have one vote),
    voted by you and awaiting a second screener, conflicts, resolved. ``figures``: the pool's
    :func:`queue_figures`, when the caller has read them (with the health's, in one pass)."""
    named = queue_figures(screener_id=screener_id)
    if figures is None:
        figures = pool_figures(session, named)
    pool = {name: int(figures[name]) for name in named}
    # Decisions (votes, resolutions) on the previous version's reports count nowhere: the
    # line counts the screening of the pool, as the other numbers beside it do. Those on a
    # record deleted since were screening work all the same, and stay.
    decisions = session.exec(select(func.count()).select_from(Decision).where(
        col(Decision.pmid).not_in(previous_reports_query()))).one()
    counts = {"records": pool.pop("records"), "undecided": pool.pop("undecided"),
              "flagged": pool.pop("flagged"), "decisions": int(decisions),
              # Stored but not screened again: said on the page so the numbers add up.
              "previous_reports": count_live(session, ~in_screening_pool())}
    return counts | pool  # the per-person counts of dual screening, in the order above


def screening_health(session: Session, *, dual: bool = False,
                     target_recall: float = TARGET_RECALL,
                     figures: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The health banner's figures (with ``dual``, also the records awaiting a second vote
    and the conflicts); None (no banner) when they cannot be computed. ``figures``: the
    pool's ``health_figures``, when the caller has read them."""
    try:
        return dict(_health(session, dual=dual, target_recall=target_recall, figures=figures))
    except Exception:  # the banner is advisory; the queue must still render
        log.exception("screening_health failed")
        return None


def queue_page_figures(session: Session, *, dual: bool,
                       screener_id: int | None) -> dict[str, Any]:
    """The queue's and the health banner's figures of the pool, read in one pass."""
    return pool_figures(session, health_figures(dual=dual)
                        | queue_figures(screener_id=screener_id))


def _progress(session: Session) -> dict[str, Any] | None:
    row = session.get(KeyValue, "screening.progress")
    return dict(row.value) if row is not None and row.value else None


def screening_progress(session: Session, engine: Engine) -> dict[str, Any] | None:
    """The newest screening run's progress as it wrote it; ``stopped`` when it never reached
    "done" and no live process holds the screen lock (a killed run: its "scoring 6000 /
    20646" is not live progress). A run writes "done" before it releases the lock, so progress
    read fresh while the lock is free, before and after, is a dead run's."""
    value = _progress(session)
    if value is None or value.get("phase") == "done" or held_by_a_live_process(engine, "screen"):
        return value
    with Session(engine) as fresh:  # this request's snapshot may predate the lock's release
        value = _progress(fresh)
    if value is not None and value.get("phase") != "done" \
            and not held_by_a_live_process(engine, "screen"):
        value["stopped"] = True
    return value
