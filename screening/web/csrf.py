"""CSRF protection for the HTML forms: a per-session synchroniser token.

Every page that shows a form puts ``csrf_token(request)`` in a hidden field; every unsafe
request to a page route (POST/PUT/PATCH/DELETE) must send it back. The JSON API does not use
cookies for writes (it needs a Bearer token), so it is not exposed to CSRF and does not use this.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Request

from screening.web.deps import SESSION_USER_KEY
from store.errors import AuthError, PermissionDeniedError

log = logging.getLogger(__name__)

#: The hidden fields of mmlr's forms, which the pages fill in and a person never saw: left out
#: of "What you sent (not saved)", which lists what to copy back ("seen_decision 0" led it).
_BOOKKEEPING = frozenset(("seen_decision", "rank_shown", "model_version_shown", "score_shown",
                          "next", "back", "shown", "t",
                          "verified", "active", "analysis", "username"))

SESSION_KEY = "csrf"
FIELD = "csrf_token"
#: Forms sent without a login: a missing token there is a stale page, not an ended session.
_ANONYMOUS_FORMS = frozenset({"/login", "/logout"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def typed_fields(pairs: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    """What a person typed into a form, for "What you sent (not saved)": its text fields but
    the token, the hidden bookkeeping, passwords and blanks."""
    return [(k, v) for k, v in pairs
            if isinstance(v, str) and k != FIELD and k not in _BOOKKEEPING
            and "password" not in k and v.strip()]


def csrf_token(request: Request) -> str:
    """The session's token, created on first use, except for the answer to a form another
    site sent: a token stored then would go out as a new session cookie, replacing the login
    cookie the browser did not send with that request (``SameSite=Lax``), and so log out the
    curator whose browser the other site used."""
    token = request.session.get(SESSION_KEY)
    if request.method in UNSAFE_METHODS and from_another_site(request):
        return token if isinstance(token, str) else ""
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def rotate_csrf_token(request: Request) -> None:
    """A new token on login/logout, so a token seen before login is worthless after it."""
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, the default port filled in; None for
    anything that is not an http(s) URL with a host (Origin: null, a malformed header)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _own_origins(request: Request) -> list[tuple[str, str, int]]:
    """mmlr's own origins: ``MMLR_BASE_URL`` (its public address) and the one this request was
    sent to (its Host header: mmlr behind a proxy that keeps the Host but not the scheme is
    still itself, so there the port decides, not the scheme)."""
    own = [_origin_of(str(request.app.state.settings.base_url)),
           _origin_of(f"{request.url.scheme}://{request.url.netloc}")]
    return [origin for origin in own if origin is not None]


def from_another_site(request: Request) -> bool:
    """Whether the browser says this request was sent by another site's page.

    It says so with ``Sec-Fetch-Site: cross-site``, or with an ``Origin`` (else a
    ``Referer``) that is not one of :func:`_own_origins` (``Origin: null``, from a sandboxed
    frame or a local file, is not mmlr either). A request with neither header (a script, an
    old browser, a proxy that drops them) is not judged: it is treated as it always was."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    said = request.headers.get("origin") or request.headers.get("referer")
    if said is None:
        return False
    origin = _origin_of(said)
    if origin is None:
        return True
    own = _own_origins(request)
    return origin not in own and all((origin[1], origin[2]) != (host, port)
                                     for _, host, port in own)


async def csrf_protect(request: Request) -> None:
    """Router dependency: refuse an unsafe request whose form token does not match.

    A refusal gives back what the form held (for copying into it again) and says the login
    ended only when the request came from mmlr's own pages: a form posted by another site
    (whose request carries no login cookie, ``SameSite=Lax``) made an mmlr page show the
    other site's text and tell a logged-in curator they were logged out. Such a request is
    refused saying it came from another site, and nothing of it is shown."""
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
            # What was typed, for a "log in again" page (here, or the login check's after
            # it) to give back: the page before it is not kept (no-store), so Back does not
            # return the form as it was filled in.
            if not from_another_site(request):
                request.state.sent_form = typed_fields(form.multi_items())
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        if from_another_site(request):
            # Its origin is not named on the page: a site's name is words its owner chose.
            log.info("refused a form sent by another site to %s (Origin %s)", request.url.path,
                     request.headers.get("origin") or request.headers.get("referer") or "?")
            raise PermissionDeniedError(
                "this form was sent from another site, not from mmlr's own pages: nothing "
                "was saved", hint="if you meant to do this, open mmlr and use its own form")
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
