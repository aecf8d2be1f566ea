"""Request-scoped dependencies: the context, a database session, the user, role checks.

Nothing here is global: the context hangs off ``request.app.state`` (built by ``create_app``),
and each request gets its own session, closed when the response is done.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlmodel import Session, col, select

from screening.web.auth import has_role, hash_token, user_for_token
from store.context import AppContext
from store.errors import AuthError, NotFoundError, PermissionDeniedError, ValidationError
from store.ids import MAX_ID, is_ascii_number, parse_id
from store.models import LoginSession, User, utcnow

SESSION_USER_KEY = "uid"
SESSION_VERSION_KEY = "sv"
SESSION_TOKEN_KEY = "sid"  # noqa: S105 - the cookie key of the login token, not a secret
#: A login lasts a working day; then log in again (the cookie's lifetime, too).
SESSION_MAX_AGE = 12 * 60 * 60
#: A judgement form's second button (``then=next``): save, then open the next record or
#: report awaiting this person (the record page's two forms).
THEN_PATTERN = "^(next)?$"


T = TypeVar("T")


def get_or_404(session: Session, model: type[T], key: object, *, missing: str) -> T:
    """The row with this primary key, or NotFoundError with the message ``missing``."""
    if isinstance(key, int) and not 0 < key <= MAX_ID:
        raise NotFoundError(missing)  # no such row, and the database must not be asked
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(missing)
    return row


def check_path_ids(request: Request) -> None:
    """Every route's ids in the path (``pmid``, ``…_id``), checked once for the whole app: a
    number no row can have (beyond :data:`store.ids.MAX_ID`) is a 404, not a question to
    the database, where SQLite would overflow. Non-numbers are left to the route's own
    validation (a 400 naming the parameter)."""
    for name, value in request.path_params.items():
        if (name == "pmid" or name.endswith("_id")) and isinstance(value, str) \
                and is_ascii_number(value) and parse_id(value) is None:
            what = "record PMID" if name == "pmid" else name.removesuffix("_id").replace(
                "_", " ")
            raise NotFoundError(f"{what} {value} is not in the database")


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def screeners_per_record(request: Request) -> int:
    """1 (single screening) or 2 (dual screening), from the settings the app was built with."""
    return int(request.app.state.settings.screeners_per_record)


def dual_screening(request: Request) -> bool:
    """Whether the app was built for dual screening (``Settings.dual_screening``)."""
    return bool(request.app.state.settings.dual_screening)


def verify_second_person(request: Request) -> bool:
    """Whether a second person must verify an estimate (``Settings.verify_second_person``)."""
    return bool(request.app.state.settings.verify_second_person)


def api_token_days(request: Request) -> int:
    """Days a newly issued API token works (``Settings.api_token_days``)."""
    return int(request.app.state.settings.api_token_days)


def get_session(request: Request) -> Iterator[Session]:
    session = get_ctx(request).sessions()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session)]


async def _request_body(request: Request) -> bytes:
    """The request's body, read on the event loop so that the route taking it can be a plain
    function, which FastAPI runs in a worker thread. A route that awaited the body itself ran
    on the event loop, and its database calls with it: one write waiting out SQLite's busy
    timeout behind another process's lock froze every request, ``/api/health`` too, for up to
    30 s."""
    return await request.body()


async def _form_fields(request: Request) -> dict[str, str]:
    """A form's text fields but the CSRF token (checked already), read on the event loop for
    the reason :func:`_request_body` gives."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


#: A route's raw request body (JSON routes parse it themselves, to say what is wrong with it).
RequestBody = Annotated[bytes, Depends(_request_body)]
#: A route's form fields, as text.
FormFields = Annotated[dict[str, str], Depends(_form_fields)]


def session_user(request: Request, session: Session) -> User | None:
    """The logged-in (cookie) user, re-read from the database on every request so that a
    deactivation, role change, password change or logout takes effect at once."""
    uid = request.session.get(SESSION_USER_KEY)
    if not isinstance(uid, int):
        return None
    user = session.get(User, uid)
    login = _login_session(request, session)
    # A cookie issued before the user's last password change carries an older version; one
    # whose login ended (logged out, or older than a working day) has no open row.
    if user is None or not user.active or login is None or login.user_id != user.id \
            or request.session.get(SESSION_VERSION_KEY, 0) != (user.session_version or 0):
        for key in (SESSION_USER_KEY, SESSION_VERSION_KEY, SESSION_TOKEN_KEY):
            request.session.pop(key, None)
        return None
    return user


def _login_session(request: Request, session: Session) -> LoginSession | None:
    """The open server-side row of this cookie's login, or None."""
    token = request.session.get(SESSION_TOKEN_KEY)
    if not isinstance(token, str) or not token:
        return None
    row = session.exec(select(LoginSession)
                       .where(LoginSession.token_hash == hash_token(token))).first()
    if row is None or row.ended_at is not None \
            or row.created_at < utcnow() - timedelta(seconds=SESSION_MAX_AGE):
        return None
    return row


def start_session(request: Request, session: Session, user: User) -> None:
    """Log ``user`` in on this cookie, stamped with their current session version and a new
    server-side login (any earlier one of this cookie ends). The caller commits."""
    if user.id is None:
        raise AuthError("this user is not saved yet")  # a programming error, never a login
    end_session(request, session)
    token = secrets.token_urlsafe(32)
    session.add(LoginSession(token_hash=hash_token(token), user_id=user.id))
    # Logins older than the cookie's lifetime can no longer be used: keep the table small.
    for old in session.exec(select(LoginSession).where(
            col(LoginSession.created_at) < utcnow() - timedelta(seconds=2 * SESSION_MAX_AGE))):
        session.delete(old)
    request.session[SESSION_USER_KEY] = user.id
    request.session[SESSION_VERSION_KEY] = user.session_version or 0
    request.session[SESSION_TOKEN_KEY] = token


def end_session(request: Request, session: Session) -> None:
    """End this cookie's login on the server (a copy of the cookie stops working) and forget
    it in the cookie. The caller commits."""
    row = _login_session(request, session)
    if row is not None:
        row.ended_at = utcnow()
        session.add(row)
    for key in (SESSION_USER_KEY, SESSION_VERSION_KEY, SESSION_TOKEN_KEY):
        request.session.pop(key, None)


def optional_user(request: Request, session: DbSession) -> User | None:
    user = session_user(request, session)
    request.state.user = user
    return user


def _denied(user: User, role: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{user.email} is a {user.role}; this needs the {role} role",
        hint="ask an admin to change your role",
    )


def require_page_role(role: str) -> Callable[..., User]:
    """Dependency for HTML pages: logged in via the session cookie with at least ``role``."""

    def dependency(request: Request, session: DbSession) -> User:
        had_login = request.session.get(SESSION_USER_KEY) is not None  # before it is cleared
        user = session_user(request, session)
        request.state.user = user
        if user is None:
            if had_login and request.method in ("POST", "PUT", "PATCH", "DELETE"):
                raise AuthError("your session ended (after 12 hours, or logged out in another "
                                "window): nothing was saved",
                                hint="log in again, then enter it again: what you typed is "
                                     "listed below")
            raise AuthError("please log in", hint="your session ended or you are not logged in")
        if not has_role(user, role):
            raise _denied(user, role)
        return user

    return dependency


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("the Authorization header must be 'Bearer <token>'")
    return value.strip()


def _api_reader(request: Request, session: Session) -> User:
    token = _bearer(request)
    user = user_for_token(session, token) if token else session_user(request, session)
    if user is None:
        raise AuthError("authentication required",
                        hint="send Authorization: Bearer <token>; create one at /account")
    request.state.user = user
    return user


def require_api_reader(request: Request, session: DbSession) -> User:
    """API reads: a Bearer token or a logged-in browser session, any role."""
    user = _api_reader(request, session)
    refuse_unknown_query(request)
    return user


def query_names(route: Any) -> list[str]:
    """The query parameters ``route`` (a FastAPI route) declares, its dependencies' included,
    in the order declared."""
    names: list[str] = []
    todo = [getattr(route, "dependant", None)]
    while todo:
        dependant = todo.pop(0)
        if dependant is None:
            continue
        names.extend(param.alias for param in dependant.query_params)
        todo.extend(dependant.dependencies)
    return list(dict.fromkeys(names))


def refuse_unknown_query(request: Request) -> None:
    """Refuse a query parameter the API route does not take: ignored, a misspelt one
    (``?flaged=true``, ``?drug=…`` where there is no such filter) answered as if it were not
    there, and the client took the whole list for the filtered one. Called once the caller is
    known (an anonymous one learns no parameter names), by every API route's caller check."""
    accepted = query_names(request.scope.get("route"))
    unknown = [name for name in dict.fromkeys(request.query_params.keys())
               if name not in accepted]
    if not unknown:
        return
    which = f"{request.method} {request.url.path}"
    takes = (f"takes {', '.join(accepted)}" if accepted else "takes no query parameters")
    raise ValidationError(
        f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(map(repr, unknown))}: {which} {takes}",
        hint="a parameter the route does not take is refused, not ignored")


def api_caller(request: Request, session: Session) -> User | None:
    """Who is calling an API route open to anyone (``/api/health``): the token's user when a
    Bearer token is sent, else the logged-in browser session's, else None. A token that is
    sent but malformed, unknown or expired is refused (AuthError), not treated as no token:
    a script whose token lapsed should hear so, not get a shorter answer without a word."""
    token = _bearer(request)
    user = user_for_token(session, token) if token else session_user(request, session)
    request.state.user = user
    return user


def require_api_writer(request: Request, session: DbSession) -> User:
    """API writes: a Bearer token (never the cookie: that would need CSRF) of a curator."""
    token = _bearer(request)
    if not token:
        raise AuthError("write endpoints need an API token",
                        hint="send Authorization: Bearer <token>; create one at /account")
    user = user_for_token(session, token)
    request.state.user = user
    if not has_role(user, "curator"):
        raise _denied(user, "curator")
    refuse_unknown_query(request)
    return user


def require_api_admin(request: Request, session: DbSession) -> User:
    """API reads only an admin may make (the audit trail): a token or a browser session of an
    admin."""
    user = _api_reader(request, session)
    if not has_role(user, "admin"):
        raise _denied(user, "admin")
    refuse_unknown_query(request)
    return user


Viewer = Annotated[User, Depends(require_page_role("viewer"))]
Curator = Annotated[User, Depends(require_page_role("curator"))]
Admin = Annotated[User, Depends(require_page_role("admin"))]
ApiReader = Annotated[User, Depends(require_api_reader)]
ApiWriter = Annotated[User, Depends(require_api_writer)]
ApiAdmin = Annotated[User, Depends(require_api_admin)]


def flash(request: Request, message: str, kind: str = "info", *,
          link: tuple[str, str] | None = None) -> None:
    """A one-shot message for the next page (never secrets: the session cookie is only signed);
    ``link`` (a path of this app, its words) follows the message, e.g. back to a record."""
    messages: list[Any] = list(request.session.get("flash", []))
    messages.append([kind, message, *(link or ())])
    request.session["flash"] = messages[-5:]


def pop_flashes(request: Request) -> list[tuple[str, str, str | None, str | None]]:
    """(kind, message, link path or None, link words or None) of each waiting message."""
    messages = request.session.pop("flash", []) or []
    out: list[tuple[str, str, str | None, str | None]] = []
    for kind, message, *link in messages:
        # Only a path of this app becomes a link: a cookie from elsewhere cannot add one.
        href = str(link[0]) if len(link) == 2 and str(link[0]).startswith("/") \
            and not str(link[0]).startswith("//") else None
        out.append((str(kind), str(message), href, str(link[1]) if href else None))
    return out


def unknown_fields(body: Mapping[str, Any], fields: Sequence[str], read_only: Iterable[str],
                   what: str) -> str | None:
    """Why a JSON body with keys outside ``fields`` (and the ``read_only`` ones a client may
    send back from a GET) is refused, or None. Refused rather than ignored: a misspelt key
    would otherwise read as a missing field, or fall back on a default without a word."""
    allowed = set(fields) | set(read_only)
    unknown = sorted(str(k) for k in body if k not in allowed)
    if not unknown:
        return None
    return f"unknown field {', '.join(map(repr, unknown))}: {what} has {', '.join(fields)}"
