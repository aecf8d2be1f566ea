"""The review queue as the pages and the API show it.

The order comes from ``screening.queue.queue`` (the active learner's certainty order, with the
random audit sample marked). Until that module exists this adapter falls back to the same
order the learner starts from: highest score first, unscored records last.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.models import Decision, KeyValue, Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueRow:
    rank: int
    pmid: int
    title: str
    journal: str | None
    year: int | None
    score: float | None
    flagged: bool
    audit_sample: bool
    model_version_id: int | None
    decision: str | None


def _learner_queue() -> Any:
    try:
        module = importlib.import_module("screening.queue")
    except ImportError:
        return None
    return getattr(module, "queue", None)


def load_queue(session: Session, *, limit: int = 50, offset: int = 0,
               include_decided: bool = False) -> list[QueueRow]:
    learner = _learner_queue()
    if learner is not None:
        items = learner(session, limit=limit, offset=offset, include_decided=include_decided)
        decisions = _decisions(session, [int(i.pmid) for i in items])
        return [
            QueueRow(rank=int(getattr(i, "rank", offset + n + 1)), pmid=int(i.pmid),
                     title=i.title, journal=getattr(i, "journal", None),
                     year=getattr(i, "year", None), score=getattr(i, "score", None),
                     flagged=bool(getattr(i, "flagged", False)),
                     audit_sample=bool(getattr(i, "audit_sample", False)),
                     model_version_id=getattr(i, "model_version_id", None),
                     decision=decisions.get(int(i.pmid)))
            for n, i in enumerate(items)
        ]
    stmt = select(Record).where(col(Record.deleted).is_(False))
    if not include_decided:
        stmt = stmt.where(col(Record.decision).is_(None))
    stmt = stmt.order_by(col(Record.score).desc().nulls_last(), col(Record.pmid).desc())
    records = session.exec(stmt.offset(offset).limit(limit)).all()
    return [
        QueueRow(rank=offset + n + 1, pmid=r.pmid, title=r.title, journal=r.journal, year=r.year,
                 score=r.score, flagged=r.flagged, audit_sample=r.audit_sample,
                 model_version_id=r.score_model_version_id, decision=r.decision)
        for n, r in enumerate(records)
    ]


def _decisions(session: Session, pmids: list[int]) -> dict[int, str | None]:
    if not pmids:
        return {}
    rows = session.exec(select(Record.pmid, Record.decision).where(col(Record.pmid).in_(pmids)))
    return {int(p): d for p, d in rows.all()}


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
    """H5's health summary when that module exists; None (no banner) otherwise."""
    try:
        module = importlib.import_module("screening.health")
    except ImportError:
        return None
    try:
        return dict(module.screening_health(session))
    except Exception:  # the banner is advisory; the queue must still render
        log.exception("screening_health failed")
        return None


def screening_progress(session: Session) -> dict[str, Any] | None:
    row = session.get(KeyValue, "screening.progress")
    return dict(row.value) if row is not None and row.value else None
