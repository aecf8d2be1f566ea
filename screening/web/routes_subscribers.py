"""Digest subscribers (admins only): the list, adding one, unsubscribing and reactivating.

The addresses of ``MMLR_DIGEST_TO`` are shown beside the list but cannot be changed here: they
live in the server's environment (``store.subscribers`` explains why they get no link).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from screening.web.csrf import csrf_protect
from screening.web.deps import Admin, DbSession, flash
from screening.web.templating import render
from store.addresses import normalise_email
from store.errors import ValidationError
from store.subscribers import add_subscriber, get_subscriber, list_subscribers, set_active

router = APIRouter(prefix="/admin", dependencies=[Depends(csrf_protect)])


def _fixed(request: Request) -> list[str]:
    """``MMLR_DIGEST_TO``, as the delivery reads it (lower-case, each address once)."""
    addresses = (normalise_email(a) for a in request.app.state.settings.digest_recipients)
    return list(dict.fromkeys(a for a in addresses if a))


def _page(request: Request, session: Session, *, status_code: int = 200,
          error: str | None = None, values: dict[str, str] | None = None) -> Response:
    return render(request, "admin_subscribers.html",
                  {"subscribers": list_subscribers(session), "fixed": _fixed(request),
                   "error": error, "values": values or {},
                   # Without SMTP nobody is mailed: the page must not let admins think so.
                   "mail_configured": request.app.state.settings.smtp_url is not None},
                  status_code=status_code)


@router.get("/subscribers")
def subscribers_page(request: Request, session: DbSession, admin: Admin) -> Response:
    return _page(request, session)


@router.post("/subscribers")
def create_subscriber(request: Request, session: DbSession, admin: Admin,
                      email: Annotated[str, Form(max_length=1000)] = "") -> Response:
    try:
        row = add_subscriber(session, email, actor=admin.email)
    except ValidationError as exc:
        session.rollback()
        # the page again, with what was typed and the reason next to the field
        return _page(request, session, status_code=400, error=exc.one_line(),
                     values={"email": email})
    session.commit()
    flash(request, f"{row.email} will receive the digests.", "ok")
    return RedirectResponse("/admin/subscribers", status_code=303)


@router.post("/subscribers/{subscriber_id}/active")
def set_subscriber_active(request: Request, subscriber_id: int, session: DbSession,
                          admin: Admin,
                          active: Annotated[str, Form(pattern="^(0|1)$")]) -> Response:
    row = get_subscriber(session, subscriber_id)
    make_active = active == "1"
    if set_active(session, row, make_active, actor=admin.email, via="admin"):
        session.commit()
    flash(request, f"{row.email} {'reactivated' if make_active else 'unsubscribed'}.", "ok")
    return RedirectResponse("/admin/subscribers", status_code=303)
