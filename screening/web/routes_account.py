"""The user's own account page: who am I, change my password, my API token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from screening.web.auth import (
    MIN_PASSWORD_LENGTH,
    PasswordFieldError,
    ThrottledError,
    change_own_password,
    confirm_current_password,
    issue_api_token,
    revoke_api_token,
    token_expired,
    token_expires_soon,
)
from screening.web.csrf import csrf_protect, rotate_csrf_token
from screening.web.deps import DbSession, Viewer, api_token_days, flash, start_session
from screening.web.routes_auth import retry_after
from screening.web.templating import render
from store.models import AuditLog, User, utcnow

router = APIRouter(dependencies=[Depends(csrf_protect)])

_Password = Annotated[str, Form(max_length=1024)]


def _token_issued(session: Session, user: User) -> AuditLog | None:
    """The audit row of the current token's issue (when and by whom), if the user has one."""
    if user.api_token_hash is None:
        return None
    return session.exec(select(AuditLog).where(
        AuditLog.action == "user.token_issued", AuditLog.object_type == "user",
        AuditLog.object_id == user.email).order_by(col(AuditLog.id).desc())).first()


def _page(request: Request, session: Session, user: User, *, status_code: int = 200,
          error: str | None = None, field: str | None = None,
          new_token: str | None = None) -> Response:
    now = utcnow()
    return render(request, "account.html",
                  {"account": user, "error": error, "field": field,
                   "min_length": MIN_PASSWORD_LENGTH,
                   "has_token": user.api_token_hash is not None,
                   "token_expired": token_expired(user, now),
                   "token_expires_soon": token_expires_soon(user, now),
                   "token_issued": _token_issued(session, user), "new_token": new_token},
                  status_code=status_code)


def _refused(request: Request, session: Session, user: User,
             exc: ThrottledError | PasswordFieldError, *, field: str) -> Response:
    """The page again with the one-line reason next to ``field``: 429 with Retry-After when
    throttled, else 400. Nothing changed, but a wrong password was audited as a failed
    login: that row is committed so the throttle counts it."""
    if isinstance(exc, ThrottledError):
        page = _page(request, session, user, status_code=429, error=exc.one_line(), field=field)
        page.headers["Retry-After"] = retry_after()
        return page
    session.commit()
    return _page(request, session, user, status_code=400, error=exc.one_line(), field=field)


@router.get("/account")
def account_page(request: Request, session: DbSession, user: Viewer) -> Response:
    return _page(request, session, user)


@router.post("/account/password")
def change_password(request: Request, session: DbSession, user: Viewer,
                    current_password: _Password = "", new_password: _Password = "",
                    confirm_password: _Password = "") -> Response:
    client = request.client.host if request.client else ""
    try:
        token_revoked = change_own_password(session, user, current=current_password,
                                            new=new_password, confirm=confirm_password,
                                            client=client)
    except (ThrottledError, PasswordFieldError) as exc:
        field = exc.field if isinstance(exc, PasswordFieldError) else "current_password"
        return _refused(request, session, user, exc, field=field)
    session.commit()
    session.refresh(user)
    # The version bump logged out every other cookie; this one is re-stamped to stay in.
    start_session(request, session, user)
    session.commit()
    rotate_csrf_token(request)
    revoked = " and your API token was revoked" if token_revoked else ""
    flash(request, f"Your password was changed; your other sessions are logged out{revoked}.",
          "ok")
    return RedirectResponse("/account", status_code=303)


@router.post("/account/token")
def create_token(request: Request, session: DbSession, user: Viewer,
                 current_password: _Password = "") -> Response:
    """Create (or rotate) the user's own API token; it is on this response only.

    The password is asked again: a token outlives the session, so a stolen session cookie
    alone must not be enough to mint one."""
    client = request.client.host if request.client else ""
    try:
        confirm_current_password(session, user, current_password, client=client,
                                 via="token_create")
    except (ThrottledError, PasswordFieldError) as exc:
        return _refused(request, session, user, exc, field="token_password")
    token = issue_api_token(session, user, actor=user.email, days=api_token_days(request))
    session.commit()
    session.refresh(user)
    # Rendered, not flashed or redirected: the session cookie is signed, not encrypted, and
    # the page is served with Cache-Control: no-store (security.py).
    return _page(request, session, user, new_token=token)


@router.post("/account/token/revoke")
def revoke_token(request: Request, session: DbSession, user: Viewer) -> Response:
    if revoke_api_token(session, user, actor=user.email):
        session.commit()
        flash(request, "Your API token was revoked: it no longer works.", "ok")
    else:
        flash(request, "You have no API token, so there was nothing to revoke.", "info")
    return RedirectResponse("/account", status_code=303)
