"""A limit on request bodies: 1 MiB (``MAX_BODY_BYTES``), for the JSON API and the forms.

Nothing the app receives comes near it — the largest form, an estimate with its Kaplan–Meier
curve points typed in, is tens of kilobytes — while without a limit one request could make
the server hold any amount in memory: Starlette reads a JSON body or an urlencoded form whole.
So it is a constant, not a setting.

The body is read here, before any route sees it, chunk by chunk up to the limit: a body
announced larger (``Content-Length``) is refused before a byte of it is read, and one sent
without a length (``Transfer-Encoding: chunked``) when the limit is passed. Either is answered
413 with the app's error shapes (``errors.py``): ``{"error", "code": "too_large"}`` under
``/api/``, the error page for a form. What was read is then handed to the app as one message.
The server (uvicorn) reads and discards the rest of a refused body, so the client gets the
answer rather than a broken connection.

No route runs for a refused body, so no route has looked up who is logged in: the error page
looks the session's user up itself (as a page would), so that its header is the signed-in
one rather than a logged-out one. If that lookup fails, the page is shown without a user.
"""

from __future__ import annotations

import logging

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screening.web.deps import get_ctx, session_user
from screening.web.errors import error_response, is_api, status_for
from store.errors import MmlrError, TooLargeError
from store.models import User

log = logging.getLogger(__name__)

#: The largest request body accepted, in bytes (1 MiB).
MAX_BODY_BYTES = 1024 * 1024


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header, if any (the server has already refused a malformed one)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """Refuse request bodies over ``MAX_BODY_BYTES`` (413) and buffer the others.

    Inside the session middleware, so that the error page of a refused form is the site's
    page (its layout, its CSRF token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > MAX_BODY_BYTES:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the server's disconnect, when it comes

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refuse(scope, receive, send, TooLargeError(
            f"the request is larger than {MAX_BODY_BYTES // 1024 // 1024} MiB, the most this "
            "server accepts: nothing was saved",
            hint="send less at once: a form or a JSON body filled in by hand is far smaller "
                 "than this"))


async def refuse(scope: Scope, receive: Receive, send: Send, error: MmlrError) -> None:
    """Answer a request no route will see with ``error`` in the app's error shapes: JSON
    under ``/api/``, else the error page with the signed-in user's header."""
    request = Request(scope, receive)
    if not is_api(request):  # the JSON body has no header to fill in
        request.state.user = await run_in_threadpool(_page_user, request)
    response = error_response(request, status_for(error), error.message, hint=error.hint)
    await response(scope, receive, send)


def _page_user(request: Request) -> User | None:
    """The logged-in user of the refused request's cookie, for the error page's header; None
    when there is none or the database cannot say (the refusal is answered all the same)."""
    try:
        with get_ctx(request).sessions() as session:
            user = session_user(request, session)
            if user is not None:
                session.expunge(user)  # the template reads it after the session closes
            return user
    except Exception as exc:  # the refusal must not become a 500 over a header
        log.warning("refusal page: could not look up the logged-in user: %s",
                    type(exc).__name__)
        return None


__all__ = ["MAX_BODY_BYTES", "BodyLimitMiddleware", "refuse"]
