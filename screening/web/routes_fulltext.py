"""The full-text stage: ``/fulltext`` lists the reports sought for retrieval with their
verdicts (every signed-in role), and a curator records a verdict from the record page
(``POST /records/{pmid}/fulltext``). The API's twins are in ``routes_api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from screening.web.csrf import csrf_protect
from screening.web.deps import Curator, DbSession, Viewer, flash
from screening.web.fulltext import LIST_LIMIT, SHOWS, sought_reports, verdict_text
from screening.web.templating import render
from store.fulltext import assess, fulltext_counts

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/fulltext")
def fulltext_page(request: Request, session: DbSession, user: Viewer,
                  show: Annotated[str, Query(pattern="^(awaiting|all)$")] = "all",
                  ) -> Response:
    return render(request, "fulltext.html", {
        "rows": sought_reports(session, show), "counts": fulltext_counts(session),
        "show": show, "shows": SHOWS, "limit": LIST_LIMIT})


@router.post("/records/{pmid}/fulltext")
def record_verdict(request: Request, pmid: int, session: DbSession, user: Curator,
                   verdict: Annotated[str, Form(max_length=20)],
                   reason: Annotated[str, Form(max_length=40)] = "",
                   note: Annotated[str, Form(max_length=4000)] = "",
                   back: Annotated[str, Form(max_length=10)] = "") -> Response:
    row = assess(session, user=user, pmid=pmid, verdict=verdict, reason=reason, note=note)
    session.commit()
    flash(request, f"Full-text verdict saved: {verdict_text(row)} (PMID {pmid}).", "ok")
    target = "/fulltext?show=awaiting" if back == "list" else f"/records/{pmid}#fulltext"
    return RedirectResponse(target, status_code=303)
