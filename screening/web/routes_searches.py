"""The search log in the browser: the protocol query, the period the searches covered, when
the query changed, and every monitoring pass with what it found (``store.searches``); the
same as CSV for a review's appendix.

Read-only and for every signed-in role.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from screening.web.deps import DbSession, Viewer
from screening.web.downloads import csv_download
from screening.web.templating import render
from store.searches import (
    KIND_WORDS,
    SEARCH_KINDS,
    count_runs,
    search_runs,
    search_summary,
    write_search_csv,
)

router = APIRouter()

PAGE_SIZE = 50
_CSV_NAME = "mmlr-search-log.csv"


@router.get("/searches")
def searches_page(request: Request, session: DbSession, user: Viewer,
                  show: Annotated[str, Query(pattern="^(searches|all)$")] = "searches",
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    only = show == "searches"
    settings = request.app.state.settings
    return render(request, "searches.html", {
        "summary": search_summary(session, settings.query),
        "runs": search_runs(session, limit=PAGE_SIZE, offset=offset, searches_only=only),
        "total": count_runs(session, searches_only=only), "offset": offset,
        "limit": PAGE_SIZE, "show": show, "kind_words": KIND_WORDS,
        "search_kinds": SEARCH_KINDS, "entrez_url": _without_userinfo(settings.entrez_url),
    })


def _without_userinfo(url: str) -> str:
    """The E-utilities address as a viewer may see it: a ``user:password@`` part (a proxy's
    credentials) is a secret and never reaches a page."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


@router.get("/searches.csv")
def searches_csv(session: DbSession, user: Viewer, excel: bool = False) -> Response:
    runs = search_runs(session)
    return csv_download(lambda fh: write_search_csv(runs, fh), _CSV_NAME, excel=excel)
