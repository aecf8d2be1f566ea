"""The user's own account page: who am I, and change my password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from screening.web.auth import (
    MIN_PASSWORD_LENGTH,
    PasswordFieldError,
    ThrottledError,
    change_own_password,
)
from screening.web.csrf import csrf_protect, rotate_csrf_token
from screening.web.deps import DbSession, Viewer, flash, start_session
from screening.web.routes_auth import retry_after
from screening.web.templating import render
from store.models import User

router = APIRouter(dependencies=[Depends(csrf_protect)])

_Password = Annotated[str, Form(max_length=1024)]


def _page(request: Request, user: User, *, status_code: int = 200, error: str | None = None,
          field: str | None = None) -> Response:
    return render(request, "account.html", {"account": user, "error": error, "field": field,
                                            "min_length": MIN_PASSWORD_LENGTH},
                  status_code=status_code)


@router.get("/account")
def account_page(request: Request, user: Viewer) -> Response:
    return _page(request, user)


@router.post("/account/password")
def change_password(request: Request, session: DbSession, user: Viewer,
                    current_password: _Password = "", new_password: _Password = "",
                    confirm_password: _Password = "") -> Response:
    client = request.client.host if request.client else ""
    try:
        change_own_password(session, user, current=current_password, new=new_password,
                            confirm=confirm_password, client=client)
    except ThrottledError as exc:
        page = _page(request, user, status_code=429, error=exc.one_line(),
                     field="current_password")
        page.headers["Retry-After"] = retry_after()
        return page
    except PasswordFieldError as exc:
        session.commit()  # nothing changed, but a wrong current password is audited: keep it
        return _page(request, user, status_code=400, error=exc.one_line(), field=exc.field)
    session.commit()
    session.refresh(user)
    # The version bump logged out every other cookie; this one is re-stamped to stay in.
    start_session(request, user)
    rotate_csrf_token(request)
    flash(request, "Your password was changed; your other sessions are logged out.", "ok")
    return RedirectResponse("/account", status_code=303)
