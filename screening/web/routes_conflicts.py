"""The conflicts page (dual screening) and the resolution form; rules in ``conflicts.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from screening.web.conflicts import (
    CONFLICTS_PAGE_SIZE,
    agreement,
    conflict_count,
    list_conflicts,
    record_resolution,
)
from screening.web.csrf import csrf_protect
from screening.web.decisions import DECISIONS
from screening.web.deps import Curator, DbSession, Viewer, flash, screeners_per_record
from screening.web.templating import render
from store.fulltext import fulltext_counts

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/conflicts")
def conflicts_page(request: Request, session: DbSession, user: Viewer) -> Response:
    return render(request, "conflicts.html", {
        "conflicts": list_conflicts(session, user), "total": conflict_count(session),
        "limit": CONFLICTS_PAGE_SIZE, "agreement": agreement(session), "decisions": DECISIONS,
        # Full-text conflicts are resolved on the record page; this page points to them.
        "fulltext_conflicts": fulltext_counts(session).conflicts,
    })


@router.post("/records/{pmid}/resolution")
def resolve(request: Request, pmid: int, session: DbSession, user: Curator,
            decision: Annotated[str, Form(max_length=20)],
            reason: Annotated[str, Form(max_length=4000)] = "",
            back: Annotated[str, Form(max_length=20)] = "conflicts") -> Response:
    row = record_resolution(session, user=user, pmid=pmid, decision=decision, reason=reason,
                            screeners_per_record=screeners_per_record(request))
    session.commit()
    request.app.state.retrainer.maybe_start(session)
    flash(request, f"Resolved: PMID {pmid} is {row.decision}.", "ok")
    # Only two places to go back to: never a URL taken from the form.
    target = f"/records/{pmid}" if back == "record" else "/conflicts"
    return RedirectResponse(target, status_code=303)
