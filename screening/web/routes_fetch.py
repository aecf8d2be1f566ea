"""``/fetch``: curators fetch PubMed records by PMID (``screening.web.fetch``).

The page shows the form and how the last fetch went: each PMID asked for, linked to its record
once stored, or said to be missing when PubMed returned nothing for it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from screening.web.csrf import csrf_protect
from screening.web.deps import Curator, DbSession, flash
from screening.web.fetch import (
    MAX_PMIDS,
    MAX_TEXT,
    FetchSummary,
    PmidFetch,
    parse_pmid_field,
)
from screening.web.templating import render
from store.audit import audit
from store.errors import StateError, ValidationError
from store.models import Record

router = APIRouter(dependencies=[Depends(csrf_protect)])

#: How long the request waits for the fetch before showing the page: a few PMIDs take a
#: second or two, so the curator usually lands on the records; a slow PubMed goes on in the
#: background and the page says so.
FETCH_WAIT_SECONDS = 10.0
#: The fetch found the poll's lock taken (the lock's holder and lease are in the log: they
#: mean nothing to a curator).
BUSY = ("Nothing fetched: PubMed was being polled at that moment (the scheduled poll, or one "
        "run by hand). Ask again in a few minutes.")


def _page(request: Request, session: Session, *, status_code: int = 200,
          error: str | None = None, typed: str = "") -> Response:
    fetcher: PmidFetch = request.app.state.fetcher
    job = fetcher.job
    asked = fetcher.pmids if job.runs or job.running else []
    stored = {r.pmid: r for r in session.exec(
        select(Record).where(col(Record.pmid).in_(asked)))} if asked else {}
    context: dict[str, Any] = {
        "available": fetcher.available, "running": job.running, "job": job, "asked": asked,
        "stored": stored, "error": error, "typed": typed, "max_pmids": MAX_PMIDS,
        "max_text": MAX_TEXT, "busy": BUSY}
    return render(request, "fetch.html", context, status_code=status_code)


@router.get("/fetch")
def fetch_page(request: Request, session: DbSession, user: Curator) -> Response:
    return _page(request, session)


@router.post("/fetch")
def fetch_pmids(request: Request, session: DbSession, user: Curator,
                pmids: Annotated[str, Form(max_length=MAX_TEXT + 1)] = "") -> Response:
    fetcher: PmidFetch = request.app.state.fetcher
    try:
        wanted = parse_pmid_field(pmids)
        fetcher.start(wanted, by=user.email)
    except (ValidationError, StateError) as exc:
        # the page again, with what was typed and the reason beside the field
        return _page(request, session, status_code=exc.http_status, error=exc.one_line(),
                     typed=pmids)
    audit(session, "record.fetch_requested", actor=user.email, object_type="record",
          pmids=wanted)
    session.commit()
    fetcher.join(timeout=FETCH_WAIT_SECONDS)
    job = fetcher.job
    if job.running:
        flash(request, "Still fetching from PubMed in the background; reload this page in a "
              "moment.", "info")
    elif job.last_error:
        flash(request, f"Fetching failed: {job.last_error}", "error")
    elif job.last_skipped:
        flash(request, BUSY, "error")
    elif fetcher.summary is not None:
        flash(request, _outcome(fetcher.summary), "ok")
    return RedirectResponse("/fetch", status_code=303)


def _outcome(summary: FetchSummary) -> str:
    """The finished fetch in a curator's words."""
    parts = [f"{n} {words}" for n, words in (
        (summary.new, "new"), (summary.updated, "updated"), (summary.unchanged, "unchanged"),
        (summary.missing, "not returned by PubMed")) if n]
    return "Fetched from PubMed: " + (", ".join(parts) if parts else "nothing") + "."
