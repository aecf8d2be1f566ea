"""The one mapping from errors to HTTP responses.

- ``MmlrError`` subclasses carry their status (``http_status``) and a one-line message: pages
  get an HTML error page, ``/api/`` gets ``{"error": "<one line>", "code": "<status's code>"}``
  (``ERROR_CODES``). A page that needs a login redirects to the login form instead.
- Starlette/FastAPI's own errors (unknown route, wrong method, malformed parameters) get the
  same two shapes.
- The database unreachable (PostgreSQL restarting, the network gone), read-only, or held
  locked by another process (SQLite's write lock past the busy timeout: a backup, a
  ``sqlite3`` shell mid-write) is a 503 saying so, with one log line: not a bug.
- Anything unexpected becomes a 500 with a generic message; the traceback goes to the log only.
  ``str()`` of an unexpected exception is never shown: it can carry SQL, paths or secrets.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.engine import (
    database_locked,
    database_read_only,
    database_unreachable,
    unreachable_reason,
)
from store.errors import AuthError, MmlrError

log = logging.getLogger(__name__)

GENERIC_500 = "internal error; the details are in the server log"
UNAVAILABLE_503 = "the database is unreachable; try again in a minute"
LOCKED_503 = ("another process holds the database locked (a backup, a command writing to "
              "it), so nothing was saved; try again in a minute")
READ_ONLY_503 = ("the database may only be read, so nothing was saved; an administrator must "
                 "give the server write access to it (the server log says more)")
#: Seconds a client is asked to wait while the database is unreachable (a restart takes
#: seconds; a load balancer's health check, /api/health, says when it is back).
UNAVAILABLE_RETRY_AFTER = 30
#: The API's machine-readable ``code`` for each status it answers: a client branches on it
#: (and on the status) rather than on ``error``, whose words may improve. Stable: add, never
#: rename.
ERROR_CODES: dict[int, str] = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    422: "unprocessable",
    429: "throttled",
    500: "internal",
    502: "upstream",
    503: "unavailable",
}


def error_code(status: int) -> str:
    """The ``code`` of an API error answered with ``status`` (``error`` for one not listed)."""
    return ERROR_CODES.get(status, "error")


def api_error_body(status: int, text: str) -> dict[str, str]:
    """The JSON body of every API error."""
    return {"error": text, "code": error_code(status)}


_HTTP_MESSAGES = {
    404: "no such page",
    405: "this method is not allowed here",
}


def is_api(request: Request | Scope) -> bool:
    path = request.url.path if isinstance(request, Request) else request["path"]
    return path == "/api" or path.startswith("/api/")


def status_for(exc: MmlrError) -> int:
    return int(getattr(exc, "http_status", 500))


def error_response(request: Request, status: int, message: str, *,
                   hint: str | None = None, headers: dict[str, str] | None = None) -> Response:
    if is_api(request):
        text = message if not hint else f"{message} ({hint})"
        return JSONResponse(api_error_body(status, text), status_code=status, headers=headers)
    from screening.web.templating import render

    try:
        # What a refused form held, set by the check that refused it: a lost login (401,
        # csrf) or a refused character (400, refused_text).
        sent = getattr(request.state, "sent_form" if status == 401 else "refused_form", None) \
            if status in (400, 401) else None
        return render(request, "error.html", {"status": status, "message": message,
                                              "hint": hint, "login_next": _back_to(request),
                                              "sent_form": sent or []},
                      status_code=status)
    except Exception:  # a broken template must not hide the original error
        log.exception("could not render the error page")
        return Response(f"{status}: {message}", status_code=status, media_type="text/plain")


def _back_to(request: Request) -> str:
    """The local page to return to after logging in again: this one for a GET, the page the
    form was on for a POST (its Referer, when it is this site, else the page its target
    belongs to); "/" otherwise."""
    if request.method == "GET":
        return request.url.path + ("?" + request.url.query if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.url.netloc and referer.path.startswith("/"):
        return referer.path + ("?" + referer.query if referer.query else "")
    # no Referer (a browser or proxy that drops it): the page the form's target belongs to
    return _page_of_form(request) or "/"


def _login_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def mmlr_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MmlrError)
    status = status_for(exc)
    if isinstance(exc, AuthError) and status == 401 and not is_api(request) \
            and request.method == "GET" and request.url.path != "/login":
        return _login_redirect(request)
    if status >= 500:
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path,
                  exc.one_line())
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 and is_api(request) else None
    if status == 429:
        headers = {"Retry-After": "900"}
    return error_response(request, status, " ".join(exc.message.split()), hint=exc.hint,
                          headers=headers)


def _page_of_form(request: Request) -> str | None:
    """For a GET of a form's target (``/trials/5/estimates``, opened from the address bar, a
    bookmark or a login's ``next``): the nearest enclosing page (``/trials/5``), or None."""
    path = request.url.path.rstrip("/")
    for _ in range(3):
        path = path.rsplit("/", 1)[0]
        candidate = path or "/"
        scope = {"type": "http", "path": candidate, "method": "GET", "root_path": ""}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            return candidate
        if not path:
            return None
    return None


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405 and request.method == "GET" and not is_api(request):
        page = _page_of_form(request)
        if page is not None:
            from screening.web.deps import flash

            flash(request, "That address receives a form and is no page of its own: here is "
                           "the page it belongs to.", "info")
            return RedirectResponse(page, status_code=303)
    message = _HTTP_MESSAGES.get(exc.status_code, "the request could not be handled")
    return error_response(request, exc.status_code, message,
                          headers=dict(exc.headers) if exc.headers else None)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _plain_problem(err: Any) -> str:
    """One malformed parameter in words a curator reads (pages; the API keeps pydantic's)."""
    where = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    name = ".".join(where) or "a value"
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    given = str(err.get("input", ""))
    given = given if len(given) <= 40 else given[:39] + "…"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be a whole number, not “{given}”"
    if kind in ("float_parsing", "float_type"):
        return f"{name} must be a number, not “{given}”"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("above", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("below", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"{name} must be {words} {ctx.get(key)}"
    if kind in ("string_pattern_mismatch", "literal_error", "enum"):
        return f"“{given}” is not a value {name} can take"
    if kind == "missing":
        return f"{name} is missing"
    if kind == "string_too_long":
        return f"{name} is too long (at most {ctx.get('max_length')} characters)"
    return f"{name} is not valid"


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if is_api(request):
        return error_response(request, 400, _describe_validation(exc))
    problems = "; ".join(_plain_problem(err) for err in exc.errors()[:3]) or "invalid request"
    return error_response(request, 400, f"this address or form is not valid: {problems}",
                          hint="go back and use the page's own links and forms, or start again "
                               "from the queue")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MmlrError, mmlr_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)


class CatchAllMiddleware:
    """Turn an unexpected exception into a generic 500 (HTML or JSON), logging the traceback.

    A pure ASGI middleware (not Starlette's ServerErrorMiddleware, which re-raises) so that the
    response still passes through the security-headers middleware outside it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            read_only = database_read_only(exc)
            locked = not read_only and database_locked(exc)
            if read_only:  # set-up (permissions, a standby server), not a bug: one line
                log.error("the database refused a write on %s %s: %s", scope.get("method"),
                          scope.get("path"), unreachable_reason(exc))
            elif locked:  # another process's write lock: over when it ends (was a 500)
                log.warning("the database was locked by another process on %s %s",
                            scope.get("method"), scope.get("path"))
            elif not database_unreachable(exc):
                log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            else:  # an outage (PostgreSQL restarting): one line, and over when it is back
                log.warning("database unreachable on %s %s: %s", scope.get("method"),
                            scope.get("path"), unreachable_reason(exc))
            if started:  # too late for a clean error page; the server closes the connection
                raise
            if read_only:
                await _send_plain_error(scope, send, 503, "Database read-only", READ_ONLY_503)
            elif locked:
                await _send_plain_error(scope, send, 503, "Database busy", LOCKED_503,
                                        retry_after=UNAVAILABLE_RETRY_AFTER)
            elif database_unreachable(exc):
                await _send_unavailable(scope, send)
            else:
                await _send_generic_500(scope, send)


async def _send_generic_500(scope: Scope, send: Send) -> None:
    await _send_plain_error(scope, send, 500, "Something went wrong", GENERIC_500)


async def _send_unavailable(scope: Scope, send: Send) -> None:
    """503 while the database is unreachable. Plain, like the 500: the templated error page
    would look up the signed-in user in the database that is down."""
    await _send_plain_error(scope, send, 503, "Database unavailable", UNAVAILABLE_503,
                            retry_after=UNAVAILABLE_RETRY_AFTER)


async def _send_plain_error(scope: Scope, send: Send, status: int, heading: str, text: str,
                            *, retry_after: int | None = None) -> None:
    body: bytes
    if is_api(scope):
        body, ctype = json.dumps(api_error_body(status, text)).encode(), "application/json"
    else:
        body = (
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Error · mmlr</title>"
            "<link rel=stylesheet href=/static/style.css></head><body><main>"
            f"<h1>{heading}</h1><p>{text}.</p>"
            "<p><a href=/>Back to the queue</a></p></main></body></html>"
        ).encode()
        ctype = "text/html; charset=utf-8"
    headers: list[Any] = [(b"content-type", ctype.encode()),
                          (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
