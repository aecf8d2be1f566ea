"""User administration (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, func, select

from screening.web.auth import (
    MIN_PASSWORD_LENGTH,
    ROLES,
    PasswordFieldError,
    ThrottledError,
    add_user,
    check_password_strength,
    check_role,
    confirm_current_password,
    issue_api_token,
    needs_rehash,
    revoke_api_token,
)
from screening.web.csrf import csrf_protect
from screening.web.deps import Admin, DbSession, api_token_days, flash, get_or_404
from screening.web.routes_auth import retry_after
from screening.web.templating import render
from store.audit import audit
from store.errors import ValidationError
from store.locks import transaction_lock
from store.models import User, utcnow

router = APIRouter(prefix="/admin", dependencies=[Depends(csrf_protect)])

_Password = Annotated[str, Form(max_length=1024)]


def _user(session: Session, user_id: int) -> User:
    return get_or_404(session, User, user_id, missing=f"user {user_id} does not exist")


def _keep_an_admin(session: Session, target: User) -> None:
    """Refuse to demote or deactivate the last active admin: nobody could undo it.

    The count and the caller's write are one step, under the lock ``admins`` (held until the
    caller's transaction ends): two admins deactivating each other at the same moment both
    counted two active admins, and both went. Now the second waits for the first to commit,
    counts again and is refused. The session must have written nothing yet."""
    transaction_lock(session.connection(), "admins")
    session.refresh(target)  # as the other request may have just left it
    if target.role != "admin" or not target.active:
        return
    admins = session.exec(select(func.count()).select_from(User).where(
        User.role == "admin", col(User.active).is_(True))).one()
    if int(admins) <= 1:
        raise ValidationError(f"{target.email} is the last active admin",
                              hint="make another user an admin first")


def _page(request: Request, session: Session, *, status_code: int = 200,
          **extra: object) -> Response:
    users = session.exec(select(User).order_by(col(User.email))).all()
    # Whose password is still stored at an older hash cost (it is redone only when they next
    # log in): an admin sees which dormant accounts to reset or deactivate.
    old_hash = {u.id for u in users if u.password_hash and needs_rehash(u.password_hash)}
    context: dict[str, object] = {"users": users, "roles": ROLES, "error": None, "values": {},
                                  "secret": None, "error_field": None, "now": utcnow(),
                                  "old_hash": old_hash, "min_length": MIN_PASSWORD_LENGTH,
                                  "token_for": None}
    context.update(extra)
    return render(request, "admin_users.html", context, status_code=status_code)


def _confirm(request: Request, session: Session, admin: User, current: str, *, via: str,
             field: str, **extra: object) -> Response | None:
    """Ask the acting admin's own password again, as /account does before a token: a new
    account or a token outlives the session, so a stolen admin session alone must not be able
    to mint one. None when it is right; else the page with the reason beside ``field`` (400,
    the wrong password committed as a failed login for the throttle; or 429 when throttled).
    """
    client = request.client.host if request.client else ""
    try:
        confirm_current_password(session, admin, current, client=client, via=via)
    except ThrottledError as exc:
        session.rollback()
        page = _page(request, session, status_code=429, error=exc.one_line(),
                     error_field=field, **extra)
        page.headers["Retry-After"] = retry_after()
        return page
    except PasswordFieldError as exc:
        session.commit()
        return _page(request, session, status_code=400, error=exc.one_line(),
                     error_field=field, **extra)
    return None


@router.get("/users")
def users_page(request: Request, session: DbSession, admin: Admin) -> Response:
    return _page(request, session)


@router.post("/users")
def create_user(request: Request, session: DbSession, admin: Admin,
                email: Annotated[str, Form(max_length=254)],
                role: Annotated[str, Form(max_length=20)],
                password: _Password = "", current_password: _Password = "") -> Response:
    refused = _confirm(request, session, admin, current_password, via="user_add",
                       field="current-password", values={"email": email, "role": role})
    if refused is not None:
        return refused
    # The field an error belongs to, so the page can put the reason beside it: a short
    # password is the password's, an unknown role (only a hand-made request sends one) the
    # role's, anything else (malformed, already a user) the address's.
    field = "password"
    try:
        if password:
            check_password_strength(password, email)
        field = "role" if role not in ROLES else "email"
        generated = add_user(session, email, role=role, password=password or None,
                             actor=admin.email)
    except ValidationError as exc:
        session.rollback()
        return _page(request, session, status_code=400, error=exc.one_line(),
                     values={"email": email, "role": role}, error_field=field)
    session.commit()
    if generated:
        # Rendered, not flashed: the session cookie is signed, not encrypted.
        return _page(request, session, secret=("password", email.strip().lower(), generated))
    flash(request, f"User {email.strip().lower()} added.", "ok")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/role")
def change_role(request: Request, user_id: int, session: DbSession, admin: Admin,
                role: Annotated[str, Form(max_length=20)]) -> Response:
    target = _user(session, user_id)
    check_role(role)
    if role != "admin":
        _keep_an_admin(session, target)
    old, target.role = target.role, role
    session.add(target)
    audit(session, "user.role", actor=admin.email, object_type="user", object_id=target.email,
          old=old, new=role)
    session.commit()
    flash(request, f"{target.email} is now a {role}.", "ok")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/users/{user_id}/active")
def set_active(request: Request, user_id: int, session: DbSession, admin: Admin,
               active: Annotated[str, Form(pattern="^(0|1)$")]) -> Response:
    target = _user(session, user_id)
    make_active = active == "1"
    if not make_active:
        _keep_an_admin(session, target)
        # a deactivated account's token dies with it (and the audit trail says so), and so
        # do its logins: a reactivation must not bring back a cookie or token of before
        # (an account is deactivated when it may be in the wrong hands)
        revoke_api_token(session, target, actor=admin.email, via="deactivate")
        target.session_version = (target.session_version or 0) + 1
    target.active = make_active
    session.add(target)
    audit(session, "user.activate" if make_active else "user.deactivate", actor=admin.email,
          object_type="user", object_id=target.email)
    session.commit()
    flash(request, f"{target.email} {'reactivated' if make_active else 'deactivated'}.", "ok")
    return RedirectResponse("/admin/users", status_code=303)


def _token_target(session: Session, user_id: int) -> User:
    target = _user(session, user_id)
    if not target.active:
        raise ValidationError(f"{target.email} is deactivated", hint="reactivate the user first")
    return target


@router.get("/users/{user_id}/token")
def token_form(request: Request, user_id: int, session: DbSession, admin: Admin) -> Response:
    """The users page with the form that issues ``user_id`` a token: it asks for the acting
    admin's password (the row's button only leads here)."""
    return _page(request, session, token_for=_token_target(session, user_id))


@router.post("/users/{user_id}/token")
def new_token(request: Request, user_id: int, session: DbSession, admin: Admin,
              current_password: _Password = "") -> Response:
    target = _token_target(session, user_id)
    refused = _confirm(request, session, admin, current_password, via="admin_token",
                       field="token-password", token_for=target)
    if refused is not None:
        return refused
    target = _token_target(session, user_id)  # read again: the password check committed
    token = issue_api_token(session, target, actor=admin.email, days=api_token_days(request))
    session.commit()
    return _page(request, session, secret=("API token", target.email, token))
