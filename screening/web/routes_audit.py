"""The audit trail for admins (``/admin/audit``): who did what, when, filtered by person,
action, object, trial or dates, and the same rows as CSV for a review's records.

Admins only: the trail holds every login attempt with its client address. Read-only, so its
form is a GET form and needs no CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from screening.web.audit_blinding import blinded
from screening.web.deps import Admin, DbSession, get_ctx
from screening.web.downloads import csv_stream
from screening.web.templating import render
from store.audit import (
    AuditQuery,
    audit_csv_chunks,
    audit_row_batches,
    audit_rows,
    count_audit_rows,
    parse_audit_query,
)
from store.errors import NotFoundError, ValidationError
from store.ids import parse_id
from store.models import AuditLog, Trial

router = APIRouter(prefix="/admin")

PAGE_SIZE = 100
_CSV_NAME = "mmlr-audit-trail.csv"
_Field = Annotated[str, Query(max_length=1000)]


def audit_form(actor: _Field = "", action: _Field = "", object_type: _Field = "",
               object_id: _Field = "", trial: _Field = "", since: _Field = "",
               until: _Field = "") -> dict[str, str]:
    """The filter fields as typed, in the page's order: the page and its CSV read the same
    query parameters (``store.audit.parse_audit_query`` checks them)."""
    return {"actor": actor, "action": action, "object_type": object_type,
            "object_id": object_id, "trial": trial, "since": since, "until": until}


AuditForm = Annotated[dict[str, str], Depends(audit_form)]


@router.get("/audit")
def audit_page(request: Request, session: DbSession, admin: Admin, values: AuditForm,
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    context: dict[str, Any] = {"values": values, "error": None, "rows": [], "total": 0,
                               "offset": offset, "limit": PAGE_SIZE, "trial_name": None,
                               "trial_names": {}}
    try:
        q = parse_audit_query(**values)
    except ValidationError as exc:
        context["error"] = exc.one_line()
        return render(request, "admin_audit.html", context, status_code=400)
    try:
        context["trial_name"] = trial_named(session, q)
    except NotFoundError as exc:
        context["error"] = exc.one_line()
        return render(request, "admin_audit.html", context, status_code=404)
    filled = {k: v.strip() for k, v in values.items() if v.strip()}
    rows = blinded(session, audit_rows(session, q, limit=PAGE_SIZE, offset=offset), admin)
    context.update(rows=rows, total=count_audit_rows(session, q), filters=urlencode(filled),
                   trial_names=_trial_names(session, rows))
    return render(request, "admin_audit.html", context)


def trial_named(session: Session, q: AuditQuery) -> str | None:
    """The name of the trial whose history ``q`` asks for; NotFoundError for an id no trial
    has (trials are never deleted: a typo, which would otherwise read as an empty history)."""
    if q.trial_id is None:
        return None
    found = session.get(Trial, q.trial_id)
    if found is None:
        raise NotFoundError(f"there is no trial {q.trial_id}",
                            hint="a trial's id is the number in its page's address, /trials/ID")
    return found.name


def _trial_names(session: Session, rows: list[AuditLog]) -> dict[str, str]:
    """The names of the trials the page's rows are about, by id as the trail keeps it: an
    id alone says nothing to the reader, and a renamed trial shows its name of today."""
    ids = {trial_id for r in rows if r.object_type == "trial" and r.object_id
           and (trial_id := parse_id(r.object_id)) is not None}
    if not ids:
        return {}
    found = session.exec(select(Trial.id, Trial.name).where(col(Trial.id).in_(ids))).all()
    return {str(trial_id): name for trial_id, name in found}


#: Rows of the trail read and written at a time by its CSV.
CSV_BATCH = 1000


@router.get("/audit.csv")
def audit_csv(request: Request, session: DbSession, admin: Admin, values: AuditForm,
              excel: bool = False) -> Response:
    """Every row the filters select, streamed: a whole trail does not fit in memory."""
    q = parse_audit_query(**values)
    trial_named(session, q)
    batches = audit_row_batches(get_ctx(request).sessions, q, size=CSV_BATCH,
                                blind=lambda s, rows: blinded(s, rows, admin))
    return csv_stream(audit_csv_chunks(batches), _CSV_NAME, excel=excel)
