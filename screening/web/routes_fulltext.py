"""The full-text stage: ``/fulltext`` lists the reports sought for retrieval with their
verdicts (every signed-in role); a curator records a judgement from the record page
(``POST /records/{pmid}/fulltext``: a verdict with one assessor, a vote with two) and, with
two assessors, a conflict is resolved there (``POST /records/{pmid}/fulltext/resolve``). The
API's twins are in ``routes_api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from screening.web.csrf import csrf_protect
from screening.web.deps import (
    THEN_PATTERN,
    Curator,
    DbSession,
    Viewer,
    dual_screening,
    flash,
    screeners_per_record,
)
from screening.web.fulltext import (
    LIST_LIMIT,
    SHOW_PATTERN,
    SHOWS,
    fulltext_agreement,
    resolve,
    sought_reports,
)
from screening.web.routes_records import record_page_response
from screening.web.templating import render
from store.errors import StateError, ValidationError
from store.fulltext import (
    RESOLUTION,
    STATE_WORDS,
    VOTE,
    Outcome,
    SoughtRule,
    assess,
    fulltext_counts,
    outcomes,
    row_words,
    verdict_words,
)
from store.models import Record, User

router = APIRouter(dependencies=[Depends(csrf_protect)])


@router.get("/fulltext")
def fulltext_page(request: Request, session: DbSession, user: Viewer,
                  show: Annotated[str, Query(pattern=SHOW_PATTERN)] = "all",
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    dual = dual_screening(request)
    # One more than a page: whether there is a next page, without counting them all.
    rows = sought_reports(session, show, viewer=user, offset=offset, limit=LIST_LIMIT + 1)
    return render(request, "fulltext.html", {
        "rows": rows[:LIST_LIMIT], "has_next": len(rows) > LIST_LIMIT, "offset": offset,
        "counts": fulltext_counts(session), "show": show, "shows": SHOWS, "limit": LIST_LIMIT,
        "agreement": fulltext_agreement(session) if dual else None})


def _back(pmid: int, back: str) -> RedirectResponse:
    target = "/fulltext?show=awaiting" if back == "list" else f"/records/{pmid}#fulltext"
    return RedirectResponse(target, status_code=303)


@router.post("/records/{pmid}/fulltext")
def record_verdict(request: Request, pmid: int, session: DbSession, user: Curator,
                   verdict: Annotated[str, Form(max_length=20)],
                   reason: Annotated[str, Form(max_length=40)] = "",
                   note: Annotated[str, Form(max_length=4000)] = "",
                   back: Annotated[str, Form(max_length=10)] = "",
                   then: Annotated[str, Form(pattern=THEN_PATTERN)] = "") -> Response:
    try:
        saved = assess(session, user=user, pmid=pmid, verdict=verdict, reason=reason,
                       note=note, screeners_per_record=screeners_per_record(request))
    except StateError:
        raise  # the report's state refuses any vote (409): not a field to correct
    except ValidationError as exc:
        session.rollback()
        record = session.get(Record, pmid)
        if record is None or not SoughtRule.for_session(session).is_sought(record) or back:
            raise  # no form on the record page to show it in: the error page says it
        # The form comes back with the error next to it and what was chosen and typed kept.
        return record_page_response(
            request, session, record, user, status_code=400, fulltext_error=exc.message,
            fulltext_values={"verdict": verdict, "reason": reason, "note": note})
    session.commit()
    row = saved.row
    # A form sent twice is saved once: the flash says the judgement was there already.
    did = "saved" if saved.created else "already saved"
    if row.kind == VOTE:
        now = outcomes(session, [pmid])[pmid]
        # (STATE_WORDS has no "resolved": a settled report is worded by its verdict)
        if now.state == "resolved":
            after = _settled_words(session, now)
        elif now.state == "conflict":
            after = "the two assessors disagree: a conflict to resolve"
        else:
            after = STATE_WORDS[now.state]
        text = f"Full-text vote {did}: {row_words(row)} (PMID {pmid}); {after}."
    else:
        text = f"Full-text verdict {did}: {row_words(row)} (PMID {pmid})."
    # After "Save and assess the next report" the report just judged is off screen: a way back.
    flash(request, text, "ok",
          link=(f"/records/{pmid}#fulltext", "Open it again") if then == "next" else None)
    if then == "next":
        return _next_report(request, session, user)
    return _back(pmid, back)


def _settled_words(session: Session, now: Outcome) -> str:
    """What settled a report, after a vote on it: the vote that made two assessors agree, or
    (a vote sent again once settled) a resolution, naming who made it, or one assessor's
    verdict under single screening. A vote sent again after a third person's resolution was
    told "the two assessors agree" of two differing votes."""
    row = now.row
    if row is None or row.kind == VOTE:
        return "the two assessors agree: settled"
    if row.kind == RESOLUTION:
        person = session.get(User, row.user_id) if row.user_id is not None else None
        by = f" by {person.email}" if person is not None else ""
        return f"settled as {verdict_words(now)} by a resolution{by}, whatever the votes"
    return f"already settled as {verdict_words(now)} by one assessor's verdict"


def _next_report(request: Request, session: Session, user: User) -> RedirectResponse:
    """The first report still needing this person's judgement, in the ``/fulltext`` list's
    order (``show=yours``), or the list with a word when none is left."""
    rows = sought_reports(session, "yours", viewer=user)
    if not rows:
        flash(request, "No report awaits your full-text assessment.", "ok")
        return RedirectResponse("/fulltext", status_code=303)
    return RedirectResponse(f"/records/{rows[0].record.pmid}#fulltext", status_code=303)


@router.post("/records/{pmid}/fulltext/resolve")
def resolve_verdict(request: Request, pmid: int, session: DbSession, user: Curator,
                    verdict: Annotated[str, Form(max_length=20)],
                    reason: Annotated[str, Form(max_length=40)] = "",
                    note: Annotated[str, Form(max_length=4000)] = "") -> Response:
    saved = resolve(session, user=user, pmid=pmid, verdict=verdict, reason=reason, note=note,
                    dual=dual_screening(request))
    session.commit()
    did = "resolved" if saved.created else "already resolved so"
    flash(request, f"Full-text assessment {did}: {row_words(saved.row)} (PMID {pmid}).", "ok")
    return _back(pmid, "")
