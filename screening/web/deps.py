"""Request-scoped dependencies: the context, a database session, the user, role checks.

Nothing here is global: the context hangs off ``request.app.state`` (built by ``create_app``),
and each request gets its own session, closed when the response is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlmodel import Session

from screening.web.auth import has_role, user_for_token
from store.context import AppContext
from store.errors import AuthError, NotFoundError, PermissionDeniedError
from store.models import User

SESSION_USER_KEY = "uid"
SESSION_VERSION_KEY = "sv"
#: A judgement form's second button (``then=next``): save, then open the next record or
#: report awaiting this person (the record page's two forms).
THEN_PATTERN = "^(next)?$"


T = TypeVar("T")


def get_or_404(session: Session, model: type[T], key: object, *, missing: str) -> T:
    """The row with this primary key, or NotFoundError with the message ``missing``."""
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(missing)
    return row


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


def get_session(request: Request) -> Iterator[Session]:
    session = get_ctx(request).sessions()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_session)]


def session_user(request: Request, session: Session) -> User | None:
    """The logged-in (cookie) user, re-read from the database on every request so that a
    deactivation, role change or password change takes effect at once."""
    uid = request.session.get(SESSION_USER_KEY)
    if not isinstance(uid, int):
        return None
    user = session.get(User, uid)
    # A cookie issued before the user's last password change carries an older version.
    if user is None or not user.active \
            or request.session.get(SESSION_VERSION_KEY, 0) != (user.session_version or 0):
        request.session.pop(SESSION_USER_KEY, None)
        request.session.pop(SESSION_VERSION_KEY, None)
        return None
    return user


def start_session(request: Request, user: User) -> None:
    """Log ``user`` in on this cookie, stamped with their current session version."""
    request.session[SESSION_USER_KEY] = user.id
    request.session[SESSION_VERSION_KEY] = user.session_version or 0


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
        user = session_user(request, session)
        request.state.user = user
        if user is None:
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


def require_api_reader(request: Request, session: DbSession) -> User:
    """API reads: a Bearer token or a logged-in browser session, any role."""
    token = _bearer(request)
    user = user_for_token(session, token) if token else session_user(request, session)
    if user is None:
        raise AuthError("authentication required",
                        hint="send Authorization: Bearer <token>; create one at /account")
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
    return user


Viewer = Annotated[User, Depends(require_page_role("viewer"))]
Curator = Annotated[User, Depends(require_page_role("curator"))]
Admin = Annotated[User, Depends(require_page_role("admin"))]
ApiReader = Annotated[User, Depends(require_api_reader)]
ApiWriter = Annotated[User, Depends(require_api_writer)]


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A one-shot message for the next page (never secrets: the session cookie is only signed)."""
    messages: list[Any] = list(request.session.get("flash", []))
    messages.append([kind, message])
    request.session["flash"] = messages[-5:]


def pop_flashes(request: Request) -> list[tuple[str, str]]:
    messages = request.session.pop("flash", []) or []
    return [(str(k), str(m)) for k, m in messages]


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
