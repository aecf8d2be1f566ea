"""``/search``: find a record or a trial by PMID, DOI, registration, trial name, words of the
title or abstract, or an author (``screening.record_search``). Read-only, every signed-in
role; a query that is one PMID of a stored record opens that record."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from screening.record_search import exact_pmid, search
from screening.web.deps import DbSession, Viewer
from screening.web.templating import render
from store.errors import ValidationError
from store.models import Record

router = APIRouter()

PAGE_SIZE = 50


@router.get("/search")
def search_page(request: Request, session: DbSession, user: Viewer,
                # No length limit here: parse_terms refuses a long query beside the search box
                # (the server's request-line limit bounds what can arrive at all).
                q: str = "",
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    pmid = exact_pmid(q)
    if pmid is not None and session.get(Record, pmid) is not None:
        return RedirectResponse(f"/records/{pmid}", status_code=303)
    try:
        found = search(session, q, limit=PAGE_SIZE + 1, offset=offset)
    except ValidationError as exc:
        # Said beside the search box, which keeps what was typed.
        return render(request, "search.html", {"q": q, "error": exc.one_line(), "found": None},
                      status_code=400)
    records = found.records[:PAGE_SIZE]
    return render(request, "search.html", {
        "q": q, "error": None, "found": found, "records": records, "offset": offset,
        "has_next": len(found.records) > PAGE_SIZE, "limit": PAGE_SIZE,
        "page_link": lambda at: "/search?" + urlencode({"q": q, "offset": at}),
        "pmid_missing": pmid})
