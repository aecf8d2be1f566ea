"""Unsubscribing from the digest by the personal link in each e-mail: no login.

``GET /unsubscribe?t=TOKEN`` only shows the (masked) address and a confirm button: mail
scanners and link previews fetch every link in a message, so a GET must never change state.
``POST /unsubscribe`` unsubscribes. It is the target of the one-click header pair
(``List-Unsubscribe`` + ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, RFC 8058):
a mail client POSTs ``List-Unsubscribe=One-Click`` to the URL of the header, token in the
query, with no cookie and no way to carry a CSRF token. The confirm form posts the same way.

Why this router has no CSRF check: CSRF abuses *ambient* authority, a cookie the browser
adds by itself to a request another site made it send. Nothing here reads the session or a
cookie: the only authority is the token in the request, an HMAC nobody can forge without the
secret key (``store.subscribers``). A site that could make a browser send a valid token
already holds the token, and with it could unsubscribe directly; a CSRF token would add
nothing, and would break the one-click POST that mail providers require. Only this router
is exempt: every other form keeps ``csrf_protect``.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from screening.web.deps import DbSession
from screening.web.templating import render
from store.addresses import normalise_email
from store.models import Subscriber
from store.subscribers import (
    UNSUBSCRIBE_PATH,
    UnsubscribeLinkError,
    mask_email,
    set_active,
    subscriber_for_token,
)

log = logging.getLogger(__name__)

router = APIRouter()  # no csrf_protect, on purpose: see the module doc

ONE_CLICK = "One-Click"


def _page(request: Request, *, state: str, subscriber: Subscriber | None = None,
          token: str = "", status_code: int = 200) -> Response:
    fixed = subscriber is not None and subscriber.email in {
        normalise_email(a) for a in request.app.state.settings.digest_recipients}
    return _no_referrer(render(request, "unsubscribe.html",
                               {"state": state, "token": token, "path": UNSUBSCRIBE_PATH,
                                "masked": mask_email(subscriber.email) if subscriber else "",
                                "fixed": fixed}, status_code=status_code))


def _no_referrer(response: Response) -> Response:
    # The token is in this page's address: not even the app's own stylesheet request may
    # carry it (the other pages say "same-origin", security.py).
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _subscriber(request: Request, session: Session, token: str | None) -> Subscriber:
    return subscriber_for_token(session, token, request.app.state.settings.secret())


def _invalid(request: Request, exc: UnsubscribeLinkError) -> Response:
    # Logged without the token: it is a capability, and logs travel further than mail.
    log.info("unsubscribe link refused: %s", exc.message)
    return _no_referrer(render(
        request, "unsubscribe.html",
        {"state": "invalid", "token": "", "path": UNSUBSCRIBE_PATH, "masked": "",
         "fixed": False, "message": exc.message, "hint": exc.hint}, status_code=400))


@router.get(UNSUBSCRIBE_PATH)
def unsubscribe_page(request: Request, session: DbSession,
                     t: Annotated[str | None, Query()] = None) -> Response:
    try:
        row = _subscriber(request, session, t)
    except UnsubscribeLinkError as exc:
        return _invalid(request, exc)
    return _page(request, state="confirm" if row.active else "done", subscriber=row,
                 token=t or "")


@router.post(UNSUBSCRIBE_PATH)
def unsubscribe(request: Request, session: DbSession,
                query_token: Annotated[str | None, Query(alias="t")] = None,
                form_token: Annotated[str | None, Form(alias="t")] = None,
                one_click: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
                ) -> Response:
    # One-click clients put the token in the query (it is the header's URL); the confirm
    # form sends it in the body so that it stays out of the address bar's history.
    token = query_token or form_token
    try:
        row = _subscriber(request, session, token)
    except UnsubscribeLinkError as exc:
        return _invalid(request, exc)
    via = "one-click" if one_click == ONE_CLICK else "link"
    if set_active(session, row, False, actor=row.email, via=via):
        session.commit()
    return _page(request, state="done", subscriber=row)
