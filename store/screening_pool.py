"""The screening pool: the records the review screens, which are all its records but the
previous version's reports.

The review continues an earlier one (the seed evidence, ``monitor.bootstrap``): the reports of
its trials were included by that review, and the monitor re-fetches them from PubMed
(``monitor.poll.watched_pmids``), so they are stored as records too. They are not screened
again: the PRISMA 2020 flow removes them as duplicates (``reports.prisma.prisma_counts``), and
the queue, the screening counts, the stopping tests, the audit sample, the digest and the
status leave them out the same way, through :func:`in_screening_pool`; so do the later
stages: the conflicts to resolve and the screeners' agreement (``screening.votes``,
``screening.web.conflicts``) and the reports sought for retrieval (``store.fulltext``). A
report a curator linked later (to a new trial, or as a later report of a seed trial) carries
no source key and stays in the pool: it was found and screened here. The classifier still
learns from them as known includes (``screening.service.build_training_set``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast
from sqlmodel import Session, col, select

from store.audit import seed_trial_rows
from store.models import Record, Trial, TrialReport


def _is_previous_report() -> tuple[Any, ...]:
    """Conditions on ``TrialReport``: a report of a seed trial that carries the seed
    evidence's source key (a curator's link has none) and a PMID."""
    # The audit row keeps the trial id as text (``store.audit.audit``): comparing text to
    # text works on both engines, where casting the audit column to an integer could fail
    # on PostgreSQL. Uncorrelated, so each engine evaluates it once per query, and the index
    # on the audit action (migration 0015) spares it reading the whole audit trail.
    return (col(TrialReport.source_key).is_not(None), col(TrialReport.pmid).is_not(None),
            cast(col(TrialReport.trial_id), String).in_(seed_trial_rows()))


def previous_reports_query() -> Any:
    """SELECT of the previous version's report PMIDs (``_is_previous_report``). NULL PMIDs
    are left out so that ``NOT IN`` over it stays true for every other record."""
    return select(TrialReport.pmid).where(*_is_previous_report())


def previous_report_pmids(session: Session) -> set[int]:
    """The PMIDs of the previous version's reports (the seed evidence's reports of its
    trials). A PubMed record with one of them is the same report, matched by PMID: the
    monitor's re-fetch of the trial reports stores them, and a search may find them too."""
    return {int(p) for p in session.exec(previous_reports_query()) if p is not None}


def in_screening_pool() -> Any:
    """SQL condition on ``Record``: the record is not one of the previous version's reports
    (usable in ``select(...).where(...)``; deleted records are a separate condition)."""
    return col(Record.pmid).not_in(previous_reports_query())


def previous_report_trials(session: Session, pmid: int) -> list[Trial]:
    """The seed trials ``pmid`` is a previous-version report of, by name (empty: the record is
    in the screening pool)."""
    return list(session.exec(
        select(Trial).join(TrialReport, col(TrialReport.trial_id) == col(Trial.id))
        .where(col(TrialReport.pmid) == pmid, *_is_previous_report())
        .order_by(col(Trial.name))).all())


__all__ = ["in_screening_pool", "previous_report_pmids", "previous_report_trials",
           "previous_reports_query"]
