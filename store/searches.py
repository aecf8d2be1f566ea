"""The search log: what was searched in PubMed, when, with which query, and what came back.

A systematic review reports its searches (PRISMA 2020 item 7, PRISMA-S): the database, the
full query, the dates the searches were run and the period they covered; a living review
also reports when its query changed. mmlr keeps every monitoring pass as a ``PollRun`` row
(``monitor.poll``); this module reads them back for the ``/searches`` page, its CSV, the JSON
API and the PRISMA page.

Kinds of run (``PollRun.kind``): ``crdt`` searches the query over a window of PubMed create
dates (new records), ``modified`` over modification dates (``[mdat]``: retractions, errata
and indexing that arrive later); ``recheck``, ``watched`` and ``pmids`` fetch known PMIDs
again and search nothing.

It lives in ``store`` because the reports (which may import only ``store``) read it too.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import IO, Any

from sqlmodel import Session, col, func, select

from store.models import PollRun
from store.spreadsheet import spreadsheet_row

#: Runs that search the query (the others fetch PMIDs already known).
SEARCH_KINDS = ("crdt", "modified")
KIND_WORDS = {
    "crdt": "search: new records (create date [crdt])",
    "modified": "search: modified records (modification date [mdat])",
    "recheck": "re-fetch: records awaiting MEDLINE indexing",
    "watched": "re-fetch: trial reports and included records",
    "pmids": "fetch: PMIDs asked for by name",
}
#: The columns of the search log CSV, in order.
CSV_COLUMNS = ("id", "kind", "status", "query", "window_start", "window_end", "started_at",
               "finished_at", "found", "fetched", "new", "updated", "unchanged", "deleted",
               "retracted", "missing", "requests", "retries", "error")


@dataclass(frozen=True)
class QueryPeriod:
    """One query and the searches run with it: first and last use."""

    query: str
    first_used: datetime
    last_used: datetime
    runs: int
    current: bool


@dataclass(frozen=True)
class SearchSummary:
    """What a methods section says about the searches."""

    query: str  # the protocol query in force now (``MMLR_QUERY``)
    first_search: datetime | None  # the first search run
    last_search: datetime | None  # the newest completed search of new records
    covered_from: date | None  # create dates covered by completed searches of new records
    covered_to: date | None
    runs: int
    failed: int  # runs that ended failed or interrupted (resumed by the next poll)
    queries: tuple[QueryPeriod, ...]  # oldest first
    # Create dates between covered_from and covered_to that no completed search covered
    # (first, last day), oldest first: an ad-hoc window past an unsearched stretch, or a
    # failed back-fill. "Create dates A to B" alone claimed they were all searched.
    gaps: tuple[tuple[date, date], ...] = ()

    @property
    def query_changed(self) -> bool:
        return len(self.queries) > 1 or any(not q.current for q in self.queries)


def search_summary(session: Session, current_query: str) -> SearchSummary:
    """The summary of every search run so far, against the query in force now."""
    searched = col(PollRun.kind).in_(SEARCH_KINDS)
    first, runs = session.exec(select(func.min(PollRun.started_at), func.count())
                               .where(searched)).one()
    last, start, end = _coverage(session)
    failed = session.exec(select(func.count()).where(
        searched, col(PollRun.status).in_(("failed", "interrupted")))).one()
    periods = session.exec(
        select(PollRun.query, func.min(PollRun.started_at), func.max(PollRun.started_at),
               func.count()).where(searched).group_by(col(PollRun.query))).all()
    queries = tuple(sorted(
        (QueryPeriod(query=q, first_used=a, last_used=b, runs=int(n),
                     current=q == current_query) for q, a, b, n in periods),
        key=lambda p: p.first_used))
    covered = merged_windows(completed_windows(session))
    gaps = tuple((a_end + timedelta(days=1), b_start - timedelta(days=1))
                 for (_, a_end), (b_start, _) in itertools.pairwise(covered))
    return SearchSummary(query=current_query, first_search=first, last_search=last,
                         covered_from=start, covered_to=end, runs=int(runs or 0),
                         failed=int(failed or 0), queries=queries, gaps=gaps)


def completed_windows(session: Session, kind: str = "crdt") -> list[tuple[date, date]]:
    """The windows (first, last day) of the completed searches of one ``kind``: create dates
    of the searches of new records (``crdt``), or modification dates (``modified``)."""
    runs = session.exec(select(PollRun).where(
        PollRun.kind == kind, PollRun.status == "completed",
        col(PollRun.window_start).is_not(None), col(PollRun.window_end).is_not(None)))
    return [(r.window_start, r.window_end) for r in runs
            if r.window_start is not None and r.window_end is not None]


def merged_windows(windows: Sequence[tuple[date, date]]) -> list[tuple[date, date]]:
    """``windows`` (first, last day) merged where they overlap or touch, oldest first: the
    stretches of days searched without a gap (the one rule for the next poll's start,
    ``monitor.poll``, and the gaps the search log reports)."""
    merged: list[tuple[date, date]] = []
    for start, stop in sorted(windows):
        if merged and start <= merged[-1][1] + timedelta(days=1):
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def last_completed_search(session: Session) -> PollRun | None:
    """The newest completed search of new records (``crdt``), or None before the first.

    "The last poll" everywhere (``mmlr status``, ``/api/health``) means this run: the
    re-fetches and the ``[mdat]`` pass do not find new records, so their finishing says
    nothing about whether the review is being kept up to date."""
    return session.exec(select(PollRun).where(PollRun.kind == "crdt",
                                              PollRun.status == "completed")
                        .order_by(col(PollRun.finished_at).desc(),
                                  col(PollRun.id).desc())).first()


def _coverage(session: Session) -> tuple[datetime | None, date | None, date | None]:
    """(finish of the newest, first and last create date covered) of the completed searches
    of new records."""
    last, start, end = session.exec(
        select(func.max(PollRun.finished_at), func.min(PollRun.window_start),
               func.max(PollRun.window_end))
        .where(PollRun.kind == "crdt", PollRun.status == "completed")).one()
    return last, start, end


def search_runs(session: Session, *, limit: int | None = None, offset: int = 0,
                searches_only: bool = False) -> list[PollRun]:
    """Poll runs, newest first (``searches_only``: leave out the re-fetches)."""
    stmt = select(PollRun).order_by(col(PollRun.started_at).desc(), col(PollRun.id).desc())
    if searches_only:
        stmt = stmt.where(col(PollRun.kind).in_(SEARCH_KINDS))
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt).all())


def count_runs(session: Session, *, searches_only: bool = False) -> int:
    stmt = select(func.count()).select_from(PollRun)
    if searches_only:
        stmt = stmt.where(col(PollRun.kind).in_(SEARCH_KINDS))
    return int(session.exec(stmt).one())


def run_row(run: PollRun) -> dict[str, Any]:
    """One run as the CSV and the JSON API give it: the query for searches (re-fetches have
    none), ``missing`` as a count (the PMIDs are in the database)."""
    return {
        "id": run.id, "kind": run.kind, "status": run.status,
        "query": run.query if run.kind in SEARCH_KINDS else None,
        "window_start": run.window_start.isoformat() if run.window_start else None,
        "window_end": run.window_end.isoformat() if run.window_end else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "found": run.found, "fetched": run.fetched, "new": run.new, "updated": run.updated,
        "unchanged": run.unchanged, "deleted": run.deleted, "retracted": run.retracted,
        "missing": len(run.missing or []), "requests": run.requests, "retries": run.retries,
        "error": run.error,
    }


def write_search_csv(runs: Sequence[PollRun], fh: IO[str]) -> None:
    """The search log as CSV, one row per run (oldest first, as an appendix reads)."""
    writer = csv.writer(fh)
    writer.writerow(CSV_COLUMNS)
    for run in sorted(runs, key=lambda r: (r.started_at, r.id or 0)):
        row = run_row(run)
        # An error text from a server, or a query, could start like a formula.
        writer.writerow(spreadsheet_row(row[c] for c in CSV_COLUMNS))


def searches_between(session: Session, start: datetime | None,
                     end: datetime) -> dict[str, Any]:
    """The searches of one digest period (started after ``start``, up to ``end``) as plain
    JSON: how many ran and failed, what they found, the create date PubMed is covered to, and
    whether the query changed (a run in the period searched with another query than the last
    run before it; with no run before, runs of the period that differ among themselves)."""
    searched = col(PollRun.kind).in_(SEARCH_KINDS)
    stmt = select(PollRun).where(searched, col(PollRun.started_at) <= end)
    if start is not None:
        stmt = stmt.where(col(PollRun.started_at) > start)
    period = list(session.exec(stmt.order_by(col(PollRun.started_at), col(PollRun.id))).all())
    before = None
    if start is not None:
        before = session.exec(select(PollRun.query).where(
            searched, col(PollRun.started_at) <= start)
            .order_by(col(PollRun.started_at).desc(), col(PollRun.id).desc())).first()
    used = {r.query for r in period}
    last, _, covered_to = _coverage(session)
    return {
        "runs": len(period),
        "failed": sum(r.status in ("failed", "interrupted") for r in period),
        "found": sum(r.found for r in period if r.kind == "crdt"),
        "new": sum(r.new for r in period),
        "updated": sum(r.updated for r in period),
        "covered_to": covered_to.isoformat() if covered_to else None,
        "last_search": last.isoformat() if last else None,
        "query_changed": bool(used - {before}) if before is not None else len(used) > 1,
    }
