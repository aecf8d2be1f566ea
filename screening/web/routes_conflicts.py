"""The conflicts page (dual screening) and the resolution form; rules in ``conflicts.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from screening.web.conflicts import (
    CONFLICTS_PAGE_SIZE,
    agreement,
    conflict_count,
    list_conflicts,
    record_resolution,
)
from screening.web.csrf import csrf_protect
from screening.web.decisions import DECISIONS
from screening.web.deps import (
    Curator,
    DbSession,
    Viewer,
    flash,
    get_or_404,
    screeners_per_record,
)
from screening.web.routes_records import record_page_response
from screening.web.templating import render
from store.errors import StateError, ValidationError
from store.fulltext import fulltext_counts
from store.models import Record, User

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/conflicts")
def conflicts_page(request: Request, session: DbSession, user: Viewer,
                   offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    return _conflicts_page(request, session, user, offset=offset)


def _conflicts_page(request: Request, session: Session, user: User, *, status_code: int = 200,
                    offset: int = 0,
                    resolve_pmid: int | None = None, resolve_values: dict[str, str] | None = None,
                    resolve_error: str | None = None) -> Response:
    """The page (``CONFLICTS_PAGE_SIZE`` conflicts from ``offset``, highest score first);
    after a refused resolution, with that record's form filled as sent and the reason it was
    refused."""
    size = CONFLICTS_PAGE_SIZE
    return render(request, "conflicts.html", {
        "conflicts": list_conflicts(session, user, limit=size, offset=offset),
        "total": conflict_count(session), "offset": offset,
        "limit": size, "agreement": agreement(session), "decisions": DECISIONS,
        # Full-text conflicts are resolved on the record page; this page points to them.
        "fulltext_conflicts": fulltext_counts(session).conflicts,
        "resolve_pmid": resolve_pmid, "resolve_values": resolve_values or {},
        "resolve_error": resolve_error,
    }, status_code=status_code)


@router.post("/records/{pmid}/resolution")
def resolve(request: Request, pmid: int, session: DbSession, user: Curator,
            decision: Annotated[str, Form(max_length=20)],
            reason: Annotated[str, Form(max_length=4000)] = "",
            back: Annotated[str, Form(max_length=20)] = "conflicts") -> Response:
    try:
        saved = record_resolution(session, user=user, pmid=pmid, decision=decision,
                                  reason=reason,
                                  screeners_per_record=screeners_per_record(request))
    except ValidationError as exc:
        # A blank reason (or a decision that is not one): back to the form that sent it, with
        # what was chosen and typed, instead of an error page that loses both. A state error
        # (not a conflict, resolved meanwhile) keeps its own page and status: the form is moot.
        if isinstance(exc, StateError):
            raise
        session.rollback()
        values = {"decision": decision, "reason": reason}
        if back == "record":
            record = get_or_404(session, Record, pmid,
                                missing=f"record PMID {pmid} is not in the database")
            return record_page_response(request, session, record, user, status_code=400,
                                        resolve_values=values, resolve_error=exc.one_line())
        return _conflicts_page(request, session, user, status_code=400, resolve_pmid=pmid,
                               resolve_values=values, resolve_error=exc.one_line())
    session.commit()
    if saved.created:
        request.app.state.retrainer.maybe_start(session)
    said = "Resolved" if saved.created else "Already resolved (this resolution was saved before)"
    flash(request, f"{said}: PMID {pmid} is {saved.row.decision}.", "ok")
    # Only two places to go back to: never a URL taken from the form.
    target = f"/records/{pmid}" if back == "record" else "/conflicts"
    return RedirectResponse(target, status_code=303)
