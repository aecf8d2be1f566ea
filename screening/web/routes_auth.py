"""Log in and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from screening.web.auth import THROTTLE_WINDOW, ThrottledError, authenticate
from screening.web.csrf import csrf_protect, rotate_csrf_token
from screening.web.deps import DbSession, end_session, flash, optional_user, start_session
from screening.web.templating import render
from store.errors import AuthError
from store.models import User

router = APIRouter(dependencies=[Depends(csrf_protect)])


def retry_after() -> str:
    """Seconds for the Retry-After header of a throttled request: the whole window (the
    oldest counted failure may be younger, but saying less would invite early retries)."""
    return str(int(THROTTLE_WINDOW.total_seconds()))


def safe_next(target: str | None) -> str:
    """Only local paths: a crafted ?next= must not send people to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, user: Annotated[User | None, Depends(optional_user)],
               next: str = "/") -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"error": None, "email": "", "next": safe_next(next)})


@router.post("/login")
def login(request: Request, session: DbSession, email: Annotated[str, Form(max_length=254)],
          password: Annotated[str, Form(max_length=1024)],
          next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    client = request.client.host if request.client else ""
    try:
        user = authenticate(session, email, password, client=client)
    except ThrottledError as exc:
        page = render(request, "login.html", {"error": exc.one_line(), "email": email,
                                              "next": safe_next(next)}, status_code=429)
        page.headers["Retry-After"] = retry_after()
        return page
    except AuthError as exc:
        session.commit()  # keep the audited failure: it feeds the throttle
        return render(request, "login.html", {"error": exc.one_line(), "email": email,
                                              "next": safe_next(next)}, status_code=401)
    end_session(request, session)
    request.session.clear()  # no state from before the login survives it
    start_session(request, session, user)
    session.commit()
    rotate_csrf_token(request)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, session: DbSession) -> Response:
    end_session(request, session)  # a copy of the cookie stops working too
    session.commit()
    request.session.clear()
    rotate_csrf_token(request)
    flash(request, "You are logged out.")
    return RedirectResponse("/login", status_code=303)
