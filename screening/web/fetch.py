"""Fetching records from PubMed by PMID from the web app (``/fetch``).

A curator who finds a trial report the searches did not (a reference list, a conference
abstract's full paper, a registry entry's publication) adds it by PMID instead of asking an
operator to run ``mmlr poll --pmids``. The fetch is that same poll, run in a background thread
of the web app (:class:`~screening.web.background.BackgroundJob`) under the same database
lock, so it never runs beside a scheduled poll; the page shows its state.

The web package may not import ``monitor`` (which imports it), so the function that polls
is given to ``create_app`` by the service that starts the web app (``monitor.service``); an
app built without one (``fetch=None``) says that fetching is not available here. What the
page reads of the poll's summary is :class:`FetchSummary`, a protocol that
``monitor.poll.PollSummary`` satisfies: mypy checks it where ``monitor.service`` passes the
poll to ``create_app``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from reports.words import plural
from screening.web.background import BackgroundJob
from store.context import AppContext
from store.errors import StateError, ValidationError
from store.ids import pmids_in

#: PMIDs one request may ask for: a reference list's worth, one or two efetch batches. A
#: longer list is an operator's `mmlr poll --pmids FILE`, with its progress bar.
MAX_PMIDS = 200
#: The longest form field accepted (a PMID is 8 digits; a pasted list has separators).
MAX_TEXT = 5000



class FetchSummary(Protocol):
    """The counts of a finished fetch that the page reports (``monitor.poll.PollSummary``
    has them among others). Read-only, so a dataclass's plain fields satisfy it."""

    @property
    def new(self) -> int: ...

    @property
    def updated(self) -> int: ...

    @property
    def unchanged(self) -> int: ...

    @property
    def missing(self) -> int: ...


#: ``fetch(ctx, pmids, stop)``: fetch and store these PMIDs (``monitor.poll.poll(ctx,
#: pmids=…, stop=stop)``) and return the run's counts. ``stop`` is set when the app shuts
#: down: the fetch ends after its current batch (checkpointed; the next poll resumes it).
Fetcher = Callable[[AppContext, list[int], threading.Event], FetchSummary]


def parse_pmid_field(text: str) -> list[int]:
    """The distinct PMIDs of the form's field, in the order given; ValidationError for an
    empty field, a token that is no PMID (naming its line) or too many PMIDs."""
    if len(text) > MAX_TEXT:
        raise ValidationError(f"the list is longer than {MAX_TEXT} characters",
                              hint=f"ask for at most {MAX_PMIDS} PMIDs at a time")
    pmids = list(dict.fromkeys(pmids_in(text, lambda lineno: f"line {lineno}")))
    if not pmids:
        raise ValidationError("no PMID given",
                              hint="type or paste PMIDs, one or more a line, separated by "
                                   "spaces or commas")
    if len(pmids) > MAX_PMIDS:
        raise ValidationError(f"{len(pmids)} PMIDs given; at most {MAX_PMIDS} at a time",
                              hint="an operator fetches a longer list with "
                                   "`mmlr poll --pmids FILE`")
    return pmids


class PmidFetch:
    """The web app's one fetch at a time: the PMIDs asked for and the background run."""

    def __init__(self, ctx: AppContext, fetch: Fetcher | None) -> None:
        self.available = fetch is not None
        self.pmids: list[int] = []
        #: The last fetch's counts, once it finished (``job.last_summary``, typed).
        self.summary: FetchSummary | None = None
        self._fetch = fetch
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.job = BackgroundJob(ctx, self._run, what="fetching from PubMed")

    def _run(self, ctx: AppContext) -> FetchSummary:
        assert self._fetch is not None
        self.summary = self._fetch(ctx, list(self.pmids), self._stopping)
        return self.summary

    def start(self, pmids: Sequence[int], *, by: str) -> None:
        """Start fetching ``pmids``; StateError when this app cannot fetch or a fetch it
        started is still running (its PMIDs would be replaced under it)."""
        if not self.available:
            raise StateError("this web app cannot fetch from PubMed",
                             hint="an operator runs `mmlr poll --pmids FILE`, or serves the "
                                  "app with `mmlr serve`/`mmlr web`")
        with self._lock:
            if self.job.running:
                raise StateError(
                    f"a fetch of {plural(len(self.pmids), 'PMID')} started by "
                    f"{self.job.started_by} is still running",
                    hint="wait until it has finished, then ask again")
            self.pmids = list(pmids)
            self.summary = None  # not the previous fetch's counts if this one fails
            self._stopping = threading.Event()  # an app a test serves again fetches again
            self.job.start(by=by)

    def stop(self) -> None:
        """The app is shutting down: a running fetch ends after its current batch."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        self.job.join(timeout)
