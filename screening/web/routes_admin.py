"""User administration (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, func, select

from screening.web.auth import (
    MIN_PASSWORD_LENGTH,
    ROLES,
    add_user,
    check_password_strength,
    check_role,
    issue_api_token,
    needs_rehash,
    revoke_api_token,
)
from screening.web.csrf import csrf_protect
from screening.web.deps import Admin, DbSession, api_token_days, flash, get_or_404
from screening.web.templating import render
from store.audit import audit
from store.errors import ValidationError
from store.models import User, utcnow

router = APIRouter(prefix="/admin", dependencies=[Depends(csrf_protect)])


def _user(session: Session, user_id: int) -> User:
    return get_or_404(session, User, user_id, missing=f"user {user_id} does not exist")


def _keep_an_admin(session: Session, target: User) -> None:
    """Refuse to demote or deactivate the last active admin: nobody could undo it."""
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
                                  "old_hash": old_hash, "min_length": MIN_PASSWORD_LENGTH}
    context.update(extra)
    return render(request, "admin_users.html", context, status_code=status_code)


@router.get("/users")
def users_page(request: Request, session: DbSession, admin: Admin) -> Response:
    return _page(request, session)


@router.post("/users")
def create_user(request: Request, session: DbSession, admin: Admin,
                email: Annotated[str, Form(max_length=254)],
                role: Annotated[str, Form(max_length=20)],
                password: Annotated[str, Form(max_length=1024)] = "") -> Response:
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


@router.post("/users/{user_id}/token")
def new_token(request: Request, user_id: int, session: DbSession, admin: Admin) -> Response:
    target = _user(session, user_id)
    if not target.active:
        raise ValidationError(f"{target.email} is deactivated", hint="reactivate the user first")
    token = issue_api_token(session, target, actor=admin.email, days=api_token_days(request))
    session.commit()
    return _page(request, session, secret=("API token", target.email, token))
