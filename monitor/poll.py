"""Incremental, resumable PubMed polling (``mmlr poll``).

One poll, under the database lock ``poll`` (so two workers never poll at once):

1. **Resume** every unfinished run first (a crash, SIGKILL or SIGTERM left it ``running`` or
   ``interrupted``): its PMID list is fixed in the ``PollRun`` row and ``batches_done`` says how
   far it got, so it continues with the next batch.
2. **Search** ``(<query>) AND start:end[crdt]``: start = ``--since``, else the end of the
   unbroken stretch of create dates, from ``poll_start``, that completed crdt runs cover
   (windows that overlap or touch merged) minus ``poll_overlap_days`` (nothing covered yet:
   ``poll_start``); end = ``--until`` or today (UTC). So an ad-hoc window past a gap is a
   back-fill: the next default poll still searches the gap. A window whose count reaches
   PubMed's 9,999 cap is split in halves, recursively. PMIDs already stored with status
   MEDLINE are final and skipped, so a poll with nothing new costs one esearch per window.
3. **Fetch** the PMID list by POST in batches of ``entrez_batch_size``. Each batch is parsed and
   upserted *in the same transaction* that advances ``batches_done``, so a batch is stored
   exactly once whatever happens to the process. A PMID the answer leaves out is what real
   PubMed does with a deleted record (ENTREZ.md §0.5: no ``DeleteCitation`` over E-utilities),
   but also what a transiently incomplete answer looks like. So a left-out PMID that is
   *stored* is asked for again, alone, before that transaction; only the documented answer
   for a PMID PubMed has no record of, an empty ``PubmedArticleSet``, marks it deleted. If
   that request fails, the batch is not stored and the run stops as ``interrupted`` (nothing is
   marked deleted; the next poll resumes the batch and asks again). So it does when the answer
   held none of the batch's PMIDs and :data:`MASS_DELETION` or more stored ones each came back
   empty alone: that is an NCBI fault, not NLM deleting a whole batch. A left-out PMID that was
   never stored costs no request now: it is counted (``PollRun.missing``) and every later
   create-date poll asks for it again with its batch (whatever kind of run left it out), until
   it arrives or :data:`LEFT_OUT_RETRY_DAYS` (30) have passed since the first answer that left
   it out, whatever ``recheck_days`` is (an answer may be incomplete for a day; a record
   PubMed dropped before we saw it is not asked for forever).
4. **Recheck** stored records that are not yet MEDLINE-indexed and younger than
   ``recheck_days`` (their MeSH and publication types arrive later), as a separate ``recheck``
   run whose requests are counted separately.

The **modified pass** (``poll(ctx, modified=True)``, ``mmlr poll --modified``, weekly in the
scheduler) closes the gap step 2 leaves: a MEDLINE record is final for the crdt pass, so a
retraction, erratum or expression of concern added to it later would never be seen. It searches
``(<query>) AND start:end[mdat]`` (start = ``--since``, else the end of the unbroken stretch
of modification dates, from the first completed modified run's start, that completed modified
runs cover, minus ``poll_overlap_days``, as for step 2; first time ``recheck_days`` back) and
fetches every PMID found, stored or not, as a ``modified`` run with the same batches,
checkpoints, upserts and alerts. Only a stored record last fetched after the whole window had
passed (a back-fill ``--until`` in the past) is skipped: its stored version already holds
every modification the window can hold.
The overlap days are searched again on purpose (NCBI's day boundaries are US time and its
indexing lags), so records modified in them are fetched once more and stored as unchanged.
The search only finds records the query matches, so the pass then re-fetches by PMID every
**watched** PMID it has not just fetched: each trial report's and each record a curator
included, marked deleted or not (a ``watched`` run; see :func:`watched_pmids`). A back-fill
window (``until`` before today) skips this: it asks about the past, the watched records are
about now.

Upserts: a new PMID is inserted, with the route that first identified it
(``Record.identified_via``: "search" from a crdt or modified run, "pmid" from a curator's PMID
list, "watched" from the watched re-fetch; a PMID an earlier run asked for and PubMed left out
keeps that earlier run's route), which no later fetch changes; a changed content hash keeps a
``RecordRevision`` with the previous snapshot and the changed fields, and resets the record's
score so it is re-scored; an unchanged record only gets ``last_fetched_at``. A record stored
before migration 0013 (no volume, issue, pages) whose hash matches the new content without them
gets them filled in as unchanged: PubMed did not change it, we only started keeping them.
``DeleteCitation``, or a deletion confirmed as in step 3, hides a record (``deleted``), never
removes it or its decisions. Retractions, errata and expressions of concern raise ``Alert``
rows, from the corrected record's links (``RetractionIn``, ``ErratumIn``,
``ExpressionOfConcernIn``) or from the notice's (``RetractionOf``, ``ErratumFor``,
``ExpressionOfConcernFor``), ``in_analysis`` when the PMID is a trial report's or a record a
curator included; so does the deletion of such a record. A link cited by its text alone that
later gets the notice's PMID is the same notice: its alert is given the PMID, not repeated.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, insert, or_
from sqlmodel import Session, col, select

from monitor.entrez import PUBMED_SEARCH_CAP, EntrezClient
from monitor.pubmed_xml import parse_all
from monitor.records import (
    CONTENT_FIELDS,
    LOCATOR_FIELDS,
    ParsedRecord,
    content_digest,
    legacy_content_hash,
)
from reports.words import plural
from store.batches import in_chunks
from store.context import AppContext
from store.errors import EntrezError, UsageError, ValidationError
from store.locks import JobLease, job_lock
from store.models import (
    IDENTIFIED_VIA,
    Alert,
    PollRun,
    Record,
    RecordRevision,
    TrialReport,
    utcnow,
)
from store.searches import completed_windows, merged_windows
from store.settings import parse_poll_start
from store.text import shorten

log = logging.getLogger(__name__)

#: A poll holds its lock at most this long without renewing it (renewed after every batch).
LOCK_TTL = 15 * 60
_UNFINISHED = ("running", "interrupted")
#: Set while `serve`/`worker` shut down (SIGTERM, Ctrl-C): a poll in a scheduler thread, where
#: no signal handler can be installed, then stops after its current batch as one in the main
#: thread does on SIGTERM, instead of holding the shutdown until every batch is fetched.
SHUTDOWN = threading.Event()
#: What a run stopped between batches says (it was "stopped by SIGTERM" after a Ctrl-C too).
STOPPED_ON_REQUEST = ("stopped when the process was asked to stop (SIGTERM or Ctrl-C); "
                      "the next poll resumes it")
#: A record fetched this long after a modification day ends is sure to hold that day's changes
#: (NCBI dates are US Eastern, up to 5 h behind UTC, and indexing lags by hours).
_MDAT_SETTLE = timedelta(days=1)
#: How long every create-date poll asks again for a PMID an efetch answer left out and that was
#: never stored, counted from the first answer that left it out. Its own window, not
#: ``recheck_days`` (how long records await MEDLINE indexing): a left-out PMID is a transport
#: fault, and with MMLR_RECHECK_DAYS=0 one left out once was never asked for again, while the
#: summary said "asked again by the next polls".
LEFT_OUT_RETRY_DAYS = 30
#: A batch answered with none of its PMIDs, each stored one of them at least this many
#: confirmed "deleted" when asked for alone, is an NCBI fault, not NLM deleting them all: the
#: batch fails (nothing marked deleted) and the next poll asks again.
MASS_DELETION = 10
#: CommentsCorrections links on a record that raise an alert of this kind.
_NOTICE_LINKS = {"ErratumIn": "erratum", "ExpressionOfConcernIn": "expression_of_concern"}
#: The same links seen from the notice: a new notice record names the record it corrects at
#: once, while the reverse link on that record may come weeks later, on a record the query may
#: not even match. Both sides raise the same alert (kind, corrected PMID, notice PMID), so it
#: is raised once. ``RetractionOf`` also marks the target retracted (``_BatchStore._links``).
_NOTICE_FOR_LINKS = {"RetractionOf": "retraction", "ErratumFor": "erratum",
                     "ExpressionOfConcernFor": "expression_of_concern"}
_WHAT = {"erratum": "an erratum", "expression_of_concern": "an expression of concern"}
#: How much of a title an alert quotes: enough to recognise the paper in a one-line message;
#: cut at a word boundary (store.text.shorten), escaped only when the alert is shown.
ALERT_TITLE_CHARS = 120


@dataclass
class PollSummary:
    found: int = 0
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    retracted: int = 0
    requests: int = 0
    retries: int = 0
    windows: int = 0
    missing: int = 0
    recheck_requests: int = 0
    watched_requests: int = 0  # the modified pass's re-fetch of trial-report/included PMIDs
    deletion_checks: int = 0  # single-PMID efetches asking about a stored PMID left out
    resumed: int = 0
    interrupted: bool = False
    run_ids: list[int] = field(default_factory=list)
    #: What PubMed left out of the query as unknown (``SearchResult.dropped``), once each.
    dropped_terms: list[str] = field(default_factory=list)

    def describe(self) -> str:
        line = (f"found {self.found} / fetched {self.fetched} / new {self.new} / updated "
                f"{self.updated} / deleted {self.deleted} / retracted {self.retracted}")
        extra = [f"{plural(self.requests, 'request')} ({plural(self.retries, 'retry', 'retries')}"
                 f", {plural(self.windows, 'window')}"
                 + (f", {self.recheck_requests} for rechecks" if self.recheck_requests else "")
                 + (f", {self.watched_requests} for watched reports"
                    if self.watched_requests else "")
                 + ")"]
        if self.missing:
            extra.append(f"{plural(self.missing, 'PMID')} not returned (asked again by the "
                         "next polls)")
        if self.deletion_checks:
            extra.append(f"{self.deletion_checks} left-out stored PMID(s) asked for again")
        if self.resumed:
            extra.append(f"resumed {self.resumed} unfinished run(s)")
        if self.dropped_terms:
            extra.append("PubMed searched without what it does not know in MMLR_QUERY: "
                         + ", ".join(self.dropped_terms) + " (a wider search than the "
                         "protocol's may find more; correct MMLR_QUERY)")
        if self.interrupted:
            extra.append("interrupted: the next poll resumes where this one stopped")
        return line + "; " + "; ".join(extra)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _parse_poll_start(value: str) -> date:
    # Settings refuse a bad value at load; this guards a Settings built around that check.
    try:
        return parse_poll_start(value)
    except ValueError as exc:
        raise ValidationError(f"MMLR_POLL_START {exc}") from None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _content_of(record: Record) -> dict[str, Any]:
    return {name: getattr(record, name) for name in CONTENT_FIELDS}


@contextmanager
def _sigterm_sets(event: threading.Event) -> Iterator[None]:
    """While polling in the main thread, SIGTERM asks for a stop after the current batch."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: finishing the current batch, then stopping")
        event.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class WindowSearch:
    """What :func:`search_window` found: the PMIDs, the esearch windows used, and the parts of
    the query PubMed did not know and left out (``SearchResult.dropped``, once each)."""

    ids: list[int]
    windows: int
    dropped: list[str] = field(default_factory=list)


def search_window(client: EntrezClient, query: str, start: date, end: date, *,
                  tag: str = "crdt") -> WindowSearch:
    """PMIDs whose ``tag`` date (crdt: created, mdat: modified) is in [start, end] matching
    ``query``, with the number of esearch windows used.

    A window whose count reaches PubMed's 9,999 cap is split in halves, recursively.
    """
    term = f"({query}) AND {start:%Y/%m/%d}:{end:%Y/%m/%d}[{tag}]"
    result = client.esearch(term, retmax=PUBMED_SEARCH_CAP)
    if result.count >= PUBMED_SEARCH_CAP:
        if start >= end:
            raise EntrezError(
                f"{result.count} records match the query on {start:%Y-%m-%d} alone; PubMed "
                f"returns at most {PUBMED_SEARCH_CAP} per search",
                hint="the query is far too broad: narrow MMLR_QUERY",
            )
        middle = start + (end - start) // 2
        log.info("window %s..%s has %d records: splitting", start, end, result.count)
        left = search_window(client, query, start, middle, tag=tag)
        right = search_window(client, query, middle + timedelta(days=1), end, tag=tag)
        return WindowSearch(left.ids + right.ids, 1 + left.windows + right.windows,
                            list(dict.fromkeys(result.dropped + left.dropped + right.dropped)))
    if len(result.ids) < result.count:
        raise EntrezError(
            f"esearch for {start:%Y/%m/%d}:{end:%Y/%m/%d}[{tag}] listed {len(result.ids)} of "
            f"{result.count} PMIDs",
            hint="E-utilities answered inconsistently; the next poll searches again",
        )
    return WindowSearch(result.ids, 1, list(dict.fromkeys(result.dropped)))


@dataclass
class _BatchAnswer:
    """What E-utilities answered for one batch, deletion checks included."""

    records: list[ParsedRecord] = field(default_factory=list)
    cited_deleted: list[int] = field(default_factory=list)  # <DeleteCitation> (replay, FTP)
    confirmed_deleted: list[int] = field(default_factory=list)  # left out, twice
    # stored, already marked deleted, left out again: still deleted, neither asked for again
    # nor "not returned" (the watched pass asks for the deleted records curators used)
    still_deleted: list[int] = field(default_factory=list)
    checks: int = 0


class _Poller:
    def __init__(self, ctx: AppContext, client: EntrezClient, lease: JobLease,
                 summary: PollSummary, stop: threading.Event, progress: bool) -> None:
        self.ctx, self.client, self.lease = ctx, client, lease
        self.summary, self.stop, self.progress = summary, stop, progress
        self.fetched_now: set[int] = set()

    # ------------------------------------------------------------------ search
    def search(self, start: date, end: date, *, tag: str = "crdt") -> WindowSearch:
        found = search_window(self.client, self.ctx.settings.query, start, end, tag=tag)
        self.summary.windows += found.windows
        if found.dropped:
            # NCBI does not fail a query with a term it does not know: it leaves the term out
            # and searches the rest (ENTREZ.md §2.1), which may be a wider search than the
            # protocol's. Not a stop: see docs/operations.md, "The protocol query".
            self.summary.dropped_terms.extend(
                t for t in found.dropped if t not in self.summary.dropped_terms)
            log.warning("the [%s] search of %s..%s ran without what PubMed does not know in "
                        "MMLR_QUERY: %s (PubMed searched the rest, which may find more than "
                        "the protocol's query; correct MMLR_QUERY)", tag, start, end,
                        "; ".join(found.dropped))
        return found

    # ------------------------------------------------------------------ runs
    def create_run(self, kind: str, pmids: list[int], *, found: int, requests: int = 0,
                   window: tuple[date, date] | None = None,
                   dropped_terms: list[str] | None = None) -> int:
        with self.ctx.sessions() as session:
            searched = kind in ("crdt", "modified")
            run = PollRun(kind=kind, query=self.ctx.settings.query if searched else kind,
                          pmids=pmids, batch_size=self.ctx.settings.entrez_batch_size,
                          found=found, requests=requests,
                          window_start=window[0] if window else None,
                          window_end=window[1] if window else None,
                          dropped_terms=list(dropped_terms or []))
            session.add(run)
            session.commit()
            assert run.id is not None
            return run.id

    def fetch_run(self, run_id: int) -> int:
        """Fetch the remaining batches of a run; return the requests it spent."""
        with self.lease.writing() as session:
            run = session.get(PollRun, run_id)
            assert run is not None
            pmids, size, done = list(run.pmids), run.batch_size, run.batches_done
            kind = run.kind
            routes = _first_routes(session, run)
            if run.status != "running" or run.error is not None:
                # A resumed run is running again: left "interrupted" with its old error,
                # `mmlr status` reported a live poll's run as stopped by SIGTERM.
                run.status, run.error, run.heartbeat_at = "running", None, utcnow()
                session.add(run)
                session.commit()
        self.summary.run_ids.append(run_id)
        total = math.ceil(len(pmids) / size) if pmids else 0
        spent = 0
        progress_cm: Any = nullcontext()
        if self.progress and total - done > 1:
            from store.progress import progress_bar

            progress_cm = progress_bar()
        with progress_cm as bar, self._marked_on_ctrl_c(run_id):
            task = bar.add_task(f"poll {kind} run {run_id}", total=total,
                                completed=done) if bar else None
            for index in range(done, total):
                batch = pmids[index * size:(index + 1) * size]
                requests0, retries0 = self.client.requests, self.client.retries
                try:
                    body = self.client.efetch_xml(batch)
                    answer = self._answer(run_id, index, batch, body)
                except EntrezError as exc:
                    self._mark(run_id, "interrupted", exc.one_line(),
                               requests=self.client.requests - requests0,
                               retries=self.client.retries - retries0)
                    raise
                spent += self.client.requests - requests0
                # Stored only under the lock (checked in the batch's own transaction): a
                # worker that lost it while fetching must not store what another now fetches.
                self._store_batch(run_id, index, batch, answer, routes,
                                  requests=self.client.requests - requests0,
                                  retries=self.client.retries - retries0)
                if bar is not None:
                    bar.update(task, completed=index + 1)
                if (self.stop.is_set() or SHUTDOWN.is_set()) and index + 1 < total:
                    # Ctrl-C (SIGINT) stops it the same way: the signal is not known here.
                    self._mark(run_id, "interrupted", STOPPED_ON_REQUEST)
                    self.summary.interrupted = True
                    return spent
        self._mark(run_id, "completed", None)
        return spent

    @contextmanager
    def _marked_on_ctrl_c(self, run_id: int) -> Iterator[None]:
        """Ctrl-C ends the poll at once (unlike SIGTERM, after the batch), but the run says
        so: left "running", `mmlr status` took it for a process that died."""
        try:
            yield
        except KeyboardInterrupt:
            self._mark(run_id, "interrupted", "stopped by Ctrl-C (SIGINT)")
            raise

    def _mark(self, run_id: int, status: str, error: str | None, *, requests: int = 0,
              retries: int = 0) -> None:
        with self.lease.writing() as session:
            run = session.get(PollRun, run_id)
            assert run is not None
            run.status = status
            run.error = error
            run.requests += requests
            run.retries += retries
            run.heartbeat_at = utcnow()
            if status == "completed":
                run.finished_at = utcnow()
            session.add(run)
            session.commit()
        self.summary.requests += requests
        self.summary.retries += retries

    # ------------------------------------------------------------------ deletions
    def _answer(self, run_id: int, index: int, batch: list[int], body: bytes) -> _BatchAnswer:
        """Parse a batch's answer and ask again, alone, for each stored PMID it left out.

        Real efetch leaves a deleted PMID out of a multi-PMID answer, and answers a request
        for it alone with an empty ``PubmedArticleSet`` (ENTREZ.md §0.5 and §2.2; the real
        bytes are the replay server's empty answer). An incomplete answer leaves PMIDs out
        too, so only that second, documented answer confirms a deletion. ENTREZ.md documents
        no esummary answer for a deleted PMID, hence efetch. Raises EntrezError (nothing
        stored) when a second request fails.
        """
        outcome = parse_all(body, name=f"efetch batch {index + 1} of poll run {run_id}",
                            on_error="keep")
        answer = _BatchAnswer(records=list(outcome.records),
                              cited_deleted=[d.pmid for d in outcome.deleted])
        returned = {r.pmid for r in answer.records} | set(answer.cited_deleted)
        left_out = [p for p in batch if p not in returned]
        stored = self._stored_deleted(left_out)
        answer.still_deleted = [p for p in left_out if stored.get(p) is True]
        for pmid in [p for p in left_out if stored.get(p) is False]:
            answer.checks += 1
            try:
                single = self.client.efetch_xml([pmid])
            except EntrezError as exc:
                # Raised, not logged: the caller records it on the run and shows it once.
                raise EntrezError(
                    f"PMID {pmid} was left out of an efetch answer and the request that would "
                    f"confirm its deletion failed: {exc.message}",
                    hint="nothing was marked deleted; the next poll resumes this batch and "
                    "asks again" + (f"; {exc.hint}" if exc.hint else ""),
                ) from None
            again = parse_all(single, name=f"efetch of PMID {pmid} alone (poll run {run_id})",
                              on_error="keep")
            if not again.records and not again.deleted and again.error is None:
                answer.confirmed_deleted.append(pmid)
                continue
            answer.records.extend(again.records)
            answer.cited_deleted.extend(d.pmid for d in again.deleted)
            if pmid in {r.pmid for r in again.records} | {d.pmid for d in again.deleted}:
                log.info("poll run %d batch %d: PMID %d was left out but served when asked for "
                         "alone (a transiently incomplete answer, not a deletion)", run_id,
                         index + 1, pmid)
            else:  # neither the record nor the documented empty answer: believe nothing
                log.warning("poll run %d batch %d: PMID %d was left out, and asked for alone "
                            "it did not come back as the empty answer of a deleted PMID "
                            "either; not marked deleted", run_id, index + 1, pmid)
        deleted = len(answer.confirmed_deleted)
        if deleted >= MASS_DELETION and not answer.records and not answer.cited_deleted:
            # NLM deletes a few records a year; every record of a batch at once is an answer
            # that lost its articles (twice), which marked them all deleted unchecked.
            message = (f"efetch returned none of the {len(batch)} PMIDs of batch {index + 1} "
                       f"of poll run {run_id}, and each of the {deleted} stored ones came back "
                       "empty when asked for alone: taken for an E-utilities fault, not "
                       f"{deleted} deletions")
            log.error("%s; nothing was marked deleted", message)
            raise EntrezError(message, hint="nothing was marked deleted; the next poll "
                              "resumes this batch and asks again")
        return answer

    def _stored_deleted(self, pmids: list[int]) -> dict[int, bool]:
        """Whether each stored PMID of ``pmids`` is marked deleted (one query per chunk);
        PMIDs never stored are absent."""
        stored: dict[int, bool] = {}
        if not pmids:
            return stored
        with self.ctx.sessions() as session:
            for part in in_chunks(sorted(set(pmids))):
                stored.update((pmid, bool(deleted)) for pmid, deleted in session.exec(
                    select(Record.pmid, Record.deleted).where(col(Record.pmid).in_(part))))
        return stored

    # ------------------------------------------------------------------ storing
    def _store_batch(self, run_id: int, index: int, batch: list[int], answer: _BatchAnswer,
                     routes: _Routes, *, requests: int, retries: int) -> None:
        counts = {"fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "deleted": 0,
                  "retracted": 0}
        returned: set[int] = set()
        with self.lease.writing() as session:
            store = _BatchStore(session, run_id, counts, routes)
            store.load(batch, answer.records)
            for rec in answer.records:
                returned.add(rec.pmid)
                store.upsert(rec)
            for pmid in answer.cited_deleted:
                returned.add(pmid)
                store.delete(pmid)
            for pmid in answer.confirmed_deleted:
                returned.add(pmid)
                store.delete(pmid)
            store.flush_new()
            counts["fetched"] = len(returned)
            still = set(answer.still_deleted)
            missing = [p for p in batch if p not in returned and p not in still]
            run = session.get(PollRun, run_id)
            assert run is not None
            run.batches_done = index + 1
            for key, value in counts.items():
                setattr(run, key, getattr(run, key) + value)
            if missing:
                run.missing = [*run.missing, *missing]
            run.requests += requests
            run.retries += retries
            run.heartbeat_at = utcnow()
            session.add(run)
            session.commit()
        for key, value in counts.items():
            setattr(self.summary, key, getattr(self.summary, key) + value)
        self.summary.missing += len(missing)
        self.summary.deletion_checks += answer.checks
        self.summary.requests += requests
        self.summary.retries += retries
        self.fetched_now.update(batch)
        for pmid in answer.confirmed_deleted:
            log.info("PMID %d is no longer in PubMed (left out of poll run %d's answer, and "
                     "asked for alone: no record): marked deleted, curator work kept", pmid,
                     run_id)
        if missing:
            log.info("poll run %d batch %d: %d PMIDs not returned: %s", run_id, index + 1,
                     len(missing), ", ".join(map(str, missing[:10])))


@dataclass(frozen=True)
class _Routes:
    """How a run's new records were first identified (``Record.identified_via``): by the
    run's own kind, unless an earlier run already asked for the PMID and PubMed left it out
    of that answer (``PollRun.missing``; a left-out PMID is asked for again by later polls):
    the first route wins, as migration 0016's back-fill has it."""

    default: str
    earlier: dict[int, str] = field(default_factory=dict)

    def of(self, pmid: int) -> str:
        return self.earlier.get(pmid, self.default)


def _first_routes(session: Session, run: PollRun) -> _Routes:
    """The :class:`_Routes` of ``run``: the earlier runs' left-out PMIDs, oldest run first.
    ``missing`` lists are short (PMIDs PubMed did not return), so all runs are read."""
    earlier: dict[int, str] = {}
    rows = session.exec(select(PollRun.kind, PollRun.missing)
                        .where(col(PollRun.id) < run.id).order_by(col(PollRun.id)))
    for kind, missing in rows:
        for pmid in missing or []:
            earlier.setdefault(int(pmid), IDENTIFIED_VIA.get(kind, "search"))
    return _Routes(IDENTIFIED_VIA.get(run.kind, "search"), earlier)


class _BatchStore:
    """Upserts of one efetch batch inside one session (one transaction)."""

    def __init__(self, session: Session, run_id: int, counts: dict[str, int],
                 routes: _Routes) -> None:
        self.session, self.run_id, self.counts = session, run_id, counts
        self.routes = routes
        self.existing: dict[int, Any] = {}  # Record, or SimpleNamespace rows not yet inserted
        self.in_analysis: set[int] = set()
        self.pending_new: list[SimpleNamespace] = []
        self.now = utcnow()

    def _persist(self, record: Any) -> None:
        """Track a changed row (rows still waiting for flush_new() are inserted there)."""
        if not any(record is pending for pending in self.pending_new):
            self.session.add(record)

    def flush_new(self) -> None:
        if self.pending_new:
            self.session.execute(insert(Record), [vars(r) for r in self.pending_new])
            self.pending_new = []

    def load(self, batch: list[int], records: list[ParsedRecord]) -> None:
        wanted = set(batch)
        for rec in records:
            wanted.add(rec.pmid)
            wanted.update(c["pmid"] for c in rec.comments_corrections
                          if c.get("pmid") and c.get("ref_type") in _NOTICE_FOR_LINKS)
        ids = sorted(wanted)
        for part in in_chunks(ids):
            for row in self.session.exec(select(Record).where(col(Record.pmid).in_(part))):
                self.existing[row.pmid] = row
                if row.decision == "include":  # on its way into an analysis
                    self.in_analysis.add(row.pmid)
            self.in_analysis.update(
                p for p in self.session.exec(
                    select(TrialReport.pmid).where(col(TrialReport.pmid).in_(part))) if p)

    def upsert(self, rec: ParsedRecord) -> None:
        # A shallow copy hashes exactly like ParsedRecord.content_hash() (same values, same
        # JSON) without dataclasses.asdict's deep copy, the slowest step of a big batch.
        content = {name: getattr(rec, name) for name in CONTENT_FIELDS}
        digest = content_digest(content)
        record = self.existing.get(rec.pmid)
        old_links: set[tuple[str | None, int | None, str | None]] = set()
        was_retracted = False
        if record is None:
            # New rows are plain attribute bags inserted with one executemany in
            # flush_new(): building ORM objects costs more than parsing them.
            record = SimpleNamespace(
                pmid=rec.pmid, **content, content_hash=digest, source="entrez",
                identified_via=self.routes.of(rec.pmid),
                first_seen_at=self.now, updated_at=self.now, last_fetched_at=self.now,
                deleted=False, retracted=False, score=None, score_model_version_id=None,
                flagged=False, audit_sample=False, decision=None)
            self.pending_new.append(record)
            self.existing[rec.pmid] = record
            self.counts["new"] += 1
            stored_before = False
        else:
            stored_before = True
            was_retracted = record.retracted
            old_links = {(c.get("ref_type"), c.get("pmid"), c.get("source"))
                         for c in record.comments_corrections}
            if record.content_hash != digest and (
                    record.content_hash == legacy_content_hash(content)):
                # Stored before migration 0013 and otherwise unchanged: only the locators
                # (volume, issue, pages) are new to us, not to PubMed. Fill them in without
                # a revision or a re-score, which every stored record would otherwise get
                # on its first re-fetch.
                for name in LOCATOR_FIELDS:
                    setattr(record, name, content[name])
                record.content_hash = digest
                self.counts["unchanged"] += 1
            elif record.content_hash != digest:
                self._revise(record, content, digest)
                self.counts["updated"] += 1
            else:
                self.counts["unchanged"] += 1
            record.last_fetched_at = self.now
            if record.deleted:  # PubMed serves it again: it is no longer deleted
                record.deleted, record.deleted_at = False, None
            self._persist(record)
        self._links(rec, record, stored_before=stored_before, was_retracted=was_retracted,
                    old_links=old_links)

    def _revise(self, record: Any, content: dict[str, Any], digest: str) -> None:
        before = _jsonable(_content_of(record))
        after = _jsonable(content)
        changed = sorted(k for k in CONTENT_FIELDS if before.get(k) != after.get(k))
        last = self.session.exec(select(func.max(RecordRevision.revision))
                                 .where(RecordRevision.pmid == record.pmid)).one()
        self.session.add(RecordRevision(
            pmid=record.pmid, revision=(last or 0) + 1, content_hash=record.content_hash,
            status=record.status, changed_fields=changed, snapshot=before,
            poll_run_id=self.run_id))
        for name, value in content.items():
            setattr(record, name, value)
        record.content_hash = digest
        record.updated_at = self.now
        # New content must be scored again by the active model.
        record.score = None
        record.flagged = False
        record.score_model_version_id = None

    def _alert(self, kind: str, pmid: int, related: int | None, message: str) -> None:
        exists = self.session.exec(select(Alert.id).where(
            Alert.kind == kind, Alert.pmid == pmid,
            Alert.related_pmid == related if related is not None
            else col(Alert.related_pmid).is_(None))).first()
        if exists is None:
            self.session.add(Alert(kind=kind, pmid=pmid, related_pmid=related, message=message,
                                   in_analysis=pmid in self.in_analysis))

    def _number_alert(self, kind: str, pmid: int, related: int, message: str) -> None:
        """NLM added the notice's PMID to a link it had cited by its text alone: the alert
        raised then (related PMID None) now names it; no second alert for the same notice."""
        numbered = self.session.exec(select(Alert.id).where(
            Alert.kind == kind, Alert.pmid == pmid, Alert.related_pmid == related)).first()
        if numbered is not None:
            return
        alert = self.session.exec(select(Alert).where(
            Alert.kind == kind, Alert.pmid == pmid, col(Alert.related_pmid).is_(None))
            .order_by(col(Alert.id))).first()
        if alert is not None:
            alert.related_pmid, alert.message = related, message
            self.session.add(alert)

    def _links(self, rec: ParsedRecord, record: Any, *, stored_before: bool,
               was_retracted: bool,
               old_links: set[tuple[str | None, int | None, str | None]]) -> None:
        in_analysis = rec.pmid in self.in_analysis
        known = {(ref, target) for ref, target, _ in old_links}
        # Links cited by text alone before: the same link with a PMID now is the same notice.
        unnumbered = {(ref, source) for ref, target, source in old_links if target is None}
        unnumbered -= {(c.get("ref_type"), c.get("source")) for c in rec.comments_corrections
                       if c.get("pmid") is None}  # still cited by text alone
        title = shorten(rec.title, ALERT_TITLE_CHARS)
        if rec.is_retracted and not was_retracted:
            record.retracted = True
            self.counts["retracted"] += 1
            if stored_before or in_analysis:
                notice = next((c.get("pmid") for c in rec.comments_corrections
                               if c.get("ref_type") == "RetractionIn"), None)
                self._alert("retraction", rec.pmid, notice,
                            f"PMID {rec.pmid} ({title}) has been retracted"
                            + (f"; notice PMID {notice}" if notice else ""))
        for link in rec.comments_corrections:
            ref, target = link.get("ref_type"), link.get("pmid")
            kind = _NOTICE_LINKS.get(ref or "")
            if kind and (ref, target) not in known and (stored_before or in_analysis):
                message = (f"PMID {rec.pmid} ({title}) has {_WHAT[kind]}"
                           + (f" (PMID {target})" if target else f": {link.get('source')}"))
                if target and (ref, link.get("source")) in unnumbered:
                    unnumbered.discard((ref, link.get("source")))
                    self._number_alert(kind, rec.pmid, target, message)
                else:
                    self._alert(kind, rec.pmid, target, message)
            notice_for = _NOTICE_FOR_LINKS.get(ref or "")
            if notice_for in _WHAT and target and (
                    target in self.existing or target in self.in_analysis):
                # The notice is news about a record we hold; the reverse link (ErratumIn...)
                # on that record may come later, and that record may never match the query.
                self._alert(notice_for, target, rec.pmid,
                            f"PMID {target} has {_WHAT[notice_for]}: notice PMID {rec.pmid} "
                            f"({title})")
            if ref == "RetractionOf" and target:
                retracted = self.existing.get(target)
                if retracted is not None and not retracted.retracted:
                    retracted.retracted = True
                    self._persist(retracted)
                    self.counts["retracted"] += 1
                if retracted is not None or target in self.in_analysis:
                    self._alert("retraction", target, rec.pmid,
                                f"PMID {target} is retracted by notice PMID {rec.pmid}")

    def delete(self, pmid: int) -> None:
        """Hide a record NLM deleted (``DeleteCitation`` or a confirmed omission): out of the
        queue, decisions and revisions kept; an alert when curators used it."""
        record = self.existing.get(pmid)
        if record is None or record.deleted:
            return
        record.deleted = True
        record.updated_at = record.deleted_at = self.now
        self._persist(record)
        self.counts["deleted"] += 1
        if pmid in self.in_analysis or record.decision:
            self._alert("deleted", pmid, None,
                        f"PMID {pmid} was deleted from PubMed; curator work is kept")


# ---------------------------------------------------------------------------- entry point
def _window(ctx: AppContext, since: date | None, until: date | None,
            kind: str = "crdt") -> tuple[date, date]:
    end = until or datetime.now(UTC).date()
    if since is None:
        origin = _origin(ctx, kind)
        covered = _covered_until(ctx, origin, kind) if origin is not None else None
        if covered is not None:
            since = covered - timedelta(days=ctx.settings.poll_overlap_days)
        elif kind == "crdt":
            since = origin
        else:
            # The first modified pass: older changes were seen when those records were first
            # fetched (or are MEDLINE-final history the review started from).
            since = end - timedelta(days=ctx.settings.recheck_days)
    assert since is not None
    if since > end:
        raise UsageError(f"poll window starts {since} after it ends {end}",
                              hint="check --since/--until")
    return since, end


def _origin(ctx: AppContext, kind: str) -> date | None:
    """Where the dates a ``kind`` of search must cover start: ``MMLR_POLL_START`` for create
    dates; for modification dates the start of the first completed modified pass (None before
    it: the first pass looks ``recheck_days`` back)."""
    if kind == "crdt":
        return _parse_poll_start(ctx.settings.poll_start)
    with ctx.sessions() as session:
        first = session.exec(
            select(PollRun).where(
                PollRun.kind == kind, PollRun.status == "completed",
                col(PollRun.window_start).is_not(None), col(PollRun.window_end).is_not(None))
            .order_by(col(PollRun.started_at), col(PollRun.id))).first()
    return first.window_start if first is not None else None


def _covered_until(ctx: AppContext, origin: date, kind: str = "crdt") -> date | None:
    """The last day of the unbroken stretch, from ``origin``, that completed searches of
    ``kind`` cover (create dates from ``MMLR_POLL_START``, or modification dates from the first
    modified pass); None when nothing from ``origin`` on is.

    Windows that overlap or touch are merged; one past an unsearched gap does not count. The
    newest window's end was taken before: an ad-hoc ``--since`` past the last poll moved the
    next poll's start over the days between, which no poll then ever searched (a back-fill
    ``--until``, then ``--since`` a week later, left that week's records out for good; an
    ad-hoc ``--modified --since`` a few days back made the weekly pass skip the days between,
    and a retraction dated in them was never seen).
    """
    with ctx.sessions() as session:
        windows = merged_windows(completed_windows(session, kind))
    for start, stop in windows:
        if start <= origin <= stop + timedelta(days=1):
            return stop if stop >= origin else None
    return None


def _final_pmids(ctx: AppContext, pmids: list[int]) -> set[int]:
    final: set[int] = set()
    with ctx.sessions() as session:
        for part in in_chunks(pmids):
            final.update(session.exec(select(Record.pmid).where(
                col(Record.pmid).in_(part), Record.status == "MEDLINE",
                col(Record.deleted).is_(False))))
    return final


def _settled_pmids(ctx: AppContext, pmids: list[int], end: date) -> set[int]:
    """Stored PMIDs fetched after every modification dated up to ``end`` had settled."""
    settled_at = datetime.combine(end + timedelta(days=1), datetime.min.time(),
                                  tzinfo=UTC) + _MDAT_SETTLE
    settled: set[int] = set()
    with ctx.sessions() as session:
        for part in in_chunks(pmids):
            settled.update(session.exec(select(Record.pmid).where(
                col(Record.pmid).in_(part), col(Record.last_fetched_at) >= settled_at)))
    return settled


def _left_out_pmids(ctx: AppContext) -> set[int]:
    """PMIDs an efetch answer left out, never stored, and first left out less than
    :data:`LEFT_OUT_RETRY_DAYS` ago: asked for again by every create-date poll until they
    arrive (a transiently incomplete answer must not lose a record) or the window passes
    (PubMed dropped them before we ever saw them: they were counted, and are named in the log,
    each time).

    Whatever kind of run the answer belonged to: a new PMID the modified pass found and PubMed
    left out was never asked again, although the summary said it would be. The window counts
    from the *first* run that left the PMID out: every run that asks again and is left out
    again lists it in its own ``missing`` too, which restarted the window, so a PMID PubMed
    never serves was asked for forever. ``missing`` lists are short, so all runs are read.
    """
    since = utcnow() - timedelta(days=LEFT_OUT_RETRY_DAYS)
    first: dict[int, datetime] = {}
    with ctx.sessions() as session:
        rows = session.exec(select(PollRun.started_at, PollRun.missing)
                            .order_by(col(PollRun.started_at), col(PollRun.id)))
        for started, missing in rows:
            for pmid in missing or []:
                first.setdefault(int(pmid), started)
        left = {pmid for pmid, started in first.items() if started >= since}
        for part in in_chunks(sorted(left)):
            stored: list[int] = list(session.exec(
                select(Record.pmid).where(col(Record.pmid).in_(part))))
            left.difference_update(stored)
    return left


def _recheck_pmids(ctx: AppContext, exclude: set[int]) -> list[int]:
    days = ctx.settings.recheck_days
    now = utcnow()
    with ctx.sessions() as session:
        rows = session.exec(select(Record.pmid).where(
            or_(col(Record.status).is_(None), col(Record.status) != "MEDLINE"),
            col(Record.deleted).is_(False),
            or_(col(Record.create_date) >= (now - timedelta(days=days)).date(),
                (col(Record.create_date).is_(None))
                & (col(Record.first_seen_at) >= now - timedelta(days=days))),
        ).order_by(col(Record.pmid)))
        return [p for p in rows if p not in exclude]


def poll(ctx: AppContext, *, since: date | None = None, until: date | None = None,
         pmids: list[int] | None = None, progress: bool = False,
         backoff_base: float = 0.5, stop: threading.Event | None = None,
         modified: bool = False) -> PollSummary:
    """One monitoring pass (see the module docstring). Raises LockedError if one is running.

    ``modified`` runs the modification-date pass instead of the create-date one (``since`` and
    ``until`` then bound the ``[mdat]`` window). ``backoff_base`` is the first retry's maximal
    delay (tests make it tiny); ``stop`` lets a caller (or SIGTERM in the main thread) end the
    poll cleanly after the current batch.
    """
    if modified and pmids is not None:
        raise UsageError("a PMID list and the modified pass cannot be combined",
                              hint="use either --pmids FILE or --modified")
    if pmids is not None and (since is not None or until is not None):
        # A PMID list is fetched whole: the dates were silently ignored.
        raise UsageError("--since/--until do not apply to a PMID list (--pmids)",
                              hint="a PMID list is fetched whole; leave the dates out")
    today = datetime.now(UTC).date()
    if until is not None and until > today:
        # The window's end is where the next poll starts: a future end would make every poll
        # after it refuse to run until that day came. Checked before anything is fetched.
        # A usage error (exit 2), as the other wrong windows: it exited 1, as for a failure.
        raise UsageError(f"--until {until} is after today ({today})",
                         hint="leave --until out to poll up to today")
    if since is not None and since > (until or today):
        # Also before anything is fetched: an unfinished run would otherwise be resumed (and
        # NCBI asked) before the window was found wrong.
        raise UsageError(f"poll window starts {since} after it ends {until or today}",
                              hint="check --since/--until")
    summary = PollSummary()
    stop_event = stop or threading.Event()
    with job_lock(ctx.engine, "poll", ttl=LOCK_TTL) as lease, \
            EntrezClient(ctx.settings, backoff_base=backoff_base) as client, \
            _sigterm_sets(stop_event):
        poller = _Poller(ctx, client, lease, summary, stop_event, progress)
        with ctx.sessions() as session:
            unfinished = list(session.exec(select(PollRun.id).where(
                col(PollRun.status).in_(_UNFINISHED)).order_by(col(PollRun.id))))
        for run_id in unfinished:
            assert run_id is not None
            log.info("resuming unfinished poll run %d", run_id)
            summary.resumed += 1
            poller.fetch_run(run_id)
            if summary.interrupted:
                return summary
        if pmids is not None:
            wanted = sorted(set(pmids))
            summary.found += len(wanted)
            poller.fetch_run(poller.create_run("pmids", wanted, found=len(wanted)))
        elif modified:
            _modified_pass(ctx, poller, since, until)
        else:
            start, end = _window(ctx, since, until)
            requests0, retries0 = client.requests, client.retries
            searched = poller.search(start, end)
            found = sorted(set(searched.ids))
            search_requests = client.requests - requests0
            summary.requests += search_requests
            summary.retries += client.retries - retries0
            summary.found += len(found)
            final = _final_pmids(ctx, found)
            left_out = _left_out_pmids(ctx) - set(found)
            todo = sorted({p for p in found if p not in final} | left_out)
            log.info("window %s..%s: %d PMIDs, %d already final, %d to fetch (%d left out of "
                     "earlier answers, asked again)", start, end, len(found), len(final),
                     len(todo), len(left_out))
            poller.fetch_run(poller.create_run("crdt", todo, found=len(found),
                                               requests=search_requests, window=(start, end),
                                               dropped_terms=searched.dropped))
            if summary.interrupted:
                return summary
            recheck = _recheck_pmids(ctx, poller.fetched_now | set(found))
            if recheck:
                summary.recheck_requests += poller.fetch_run(
                    poller.create_run("recheck", recheck, found=0))
    log.info("poll: %s", summary.describe())
    return summary


def _modified_pass(ctx: AppContext, poller: _Poller, since: date | None,
                   until: date | None) -> None:
    summary, client = poller.summary, poller.client
    start, end = _window(ctx, since, until, kind="modified")
    requests0, retries0 = client.requests, client.retries
    searched = poller.search(start, end, tag="mdat")
    found = sorted(set(searched.ids))
    search_requests = client.requests - requests0
    summary.requests += search_requests
    summary.retries += client.retries - retries0
    summary.found += len(found)
    skip = _settled_pmids(ctx, found, end) | poller.fetched_now
    todo = [p for p in found if p not in skip]
    log.info("modified window %s..%s: %d PMIDs, %d fetched since the window closed, %d to "
             "fetch", start, end, len(found), len(found) - len(todo), len(todo))
    poller.fetch_run(poller.create_run("modified", todo, found=len(found),
                                       requests=search_requests, window=(start, end),
                                       dropped_terms=searched.dropped))
    if summary.interrupted or end < datetime.now(UTC).date():
        return  # a back-fill asks about its past window; the watched PMIDs are about now
    watched = [p for p in watched_pmids(ctx) if p not in poller.fetched_now]
    if watched:
        log.info("modified pass: re-fetching %d watched PMIDs (trial reports, included "
                 "records)", len(watched))
        summary.watched_requests += poller.fetch_run(
            poller.create_run("watched", watched, found=0))


def watched_pmids(ctx: AppContext) -> list[int]:
    """PMIDs the modified pass re-fetches by PMID: every trial report's, every record a
    curator included, those marked deleted too.

    Deleted ones too because a deletion is only PubMed leaving a PMID out of two answers in a
    row, which an incomplete answer can also do: left out of this list, such a record stayed
    deleted for good, since no other pass fetches it again. Asked for weekly, a record PubMed
    serves again is no longer deleted, and one still left out stays deleted without a further
    request (``_BatchAnswer.still_deleted``).

    The ``[mdat]`` search only finds what matches the query, and the seed reports are older
    than ``poll_start``, so a retraction, erratum or deletion of a report in an analysis could
    otherwise go unseen. Why a plain efetch of the list rather than asking first which of them
    changed: ENTREZ.md documents fetching explicit PMID lists by POST in batches (§0.5, §3.6
    "or re-fetch PMIDs") but no way to intersect a PMID list with an ``[mdat]`` range, and
    for a review's few hundred PMIDs the efetch costs ⌈N/200⌉ POSTs, one up to 200, which is
    what that esearch would cost before fetching anything. It does not depend on NCBI's
    undocumented mdat day boundaries, and only a fetch by PMID notices a deleted report (a
    search just stops finding it). Unchanged records are stored as unchanged (content hash).
    """
    with ctx.sessions() as session:
        reports = {p for p in session.exec(select(TrialReport.pmid).where(
            col(TrialReport.pmid).is_not(None))) if p}
        included = set(session.exec(select(Record.pmid).where(Record.decision == "include")))
    return sorted(reports | included)


def scheduled_modified_pass() -> None:
    """Scheduler entry point (job ``modified-pass``) for the modification-date pass.

    A pass skipped because another poll holds the lock loses nothing: the next one starts from
    the end of what *completed* modified runs cover.
    """
    from monitor.cycle import scheduled_job
    from monitor.scheduler import claim_tick

    with scheduled_job("modified pass") as context:
        ctx = context()
        if claim_tick(ctx, "modified-pass"):
            summary = poll(ctx, modified=True)
            log.info("scheduled modified pass: %s", summary.describe())
