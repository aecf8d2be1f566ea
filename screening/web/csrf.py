"""CSRF protection for the HTML forms: a per-session synchroniser token.

Every page that shows a form puts ``csrf_token(request)`` in a hidden field; every unsafe
request to a page route (POST/PUT/PATCH/DELETE) must send it back. The JSON API does not use
cookies for writes (it needs a Bearer token), so it is not exposed to CSRF and does not use this.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from screening.web.deps import SESSION_USER_KEY
from store.errors import AuthError, PermissionDeniedError

SESSION_KEY = "csrf"
FIELD = "csrf_token"
#: Forms sent without a login: a missing token there is a stale page, not an ended session.
_ANONYMOUS_FORMS = frozenset({"/login", "/logout"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token(request: Request) -> str:
    """The session's token, created on first use."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def rotate_csrf_token(request: Request) -> None:
    """A new token on login/logout, so a token seen before login is worthless after it."""
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)


async def csrf_protect(request: Request) -> None:
    """Router dependency: refuse an unsafe request whose form token does not match."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = request.session.get(SESSION_KEY)
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(FIELD)
            sent = value if isinstance(value, str) else None
            # What was typed, for the "log in again" page to give back: the page before it
            # is not kept (no-store), so Back does not return the form as it was filled in.
            request.state.sent_form = [(k, v) for k, v in form.multi_items()
                                       if isinstance(v, str) and k != FIELD
                                       and "password" not in k and v.strip()]
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        logged_out = request.session.get(SESSION_USER_KEY) is None
        if logged_out and request.url.path not in _ANONYMOUS_FORMS:
            # The cookie's login is gone (logged out in another tab, or it expired): say so,
            # rather than "not allowed", and lead back to the login form.
            raise AuthError(
                "you are no longer logged in (your session ended, or you logged out in another "
                "window): nothing was saved",
                hint="log in again, then enter it again: what you typed is listed below")
        raise PermissionDeniedError(
            "the form's security token is missing or does not match this session",
            hint="reload the page and submit the form again",
        )
