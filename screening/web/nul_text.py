"""Refuse a NUL character (U+0000) anywhere in a request: the address, a query parameter, a
form field or a JSON string.

PostgreSQL cannot store NUL in text (``invalid byte sequence``/``cannot contain NUL``), and
SQLite's LIKE stops reading a pattern at it, so ``/search?q=%00`` matched every trial there.
Nobody types it: it comes from pasting binary content or from a client's bug. One check
before any route, rather than one in each of the app's forms and the API's bodies, so that a
new field cannot forget it; the answer is 400 naming where the character was, and nothing is
saved. Other control characters are each field's business (a one-line field refuses line
breaks and tabs, ``extraction.py``; a note may have line breaks).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screening.web.body_limit import refuse
from store.errors import ValidationError

_NUL = "\x00"


def _in_pairs(encoded: str, kind: str) -> str | None:
    for name, value in parse_qsl(encoded, keep_blank_values=True, errors="replace"):
        if _NUL in name or _NUL in value:
            return f"the {kind} {name.replace(_NUL, '')!r}"
    return None


def _in_json(value: Any, at: str) -> str | None:
    if isinstance(value, str):
        return (f"the JSON field {at!r}" if at else "the JSON body") if _NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _NUL in key:
                return f"a JSON key in {at!r}" if at else "a JSON key"
            found = _in_json(item, f"{at}.{key}" if at else key)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _in_json(item, f"{at}[{index}]")
            if found:
                return found
    return None


def nul_at(scope: Scope, body: bytes) -> str | None:
    """Where the request holds a NUL character, in words ("the form field 'note'"), or None.

    A JSON body that does not parse is left to the route, which says what is wrong with it."""
    if _NUL in scope.get("path", ""):
        return "the address"
    query = scope.get("query_string", b"").decode("latin-1")
    found = _in_pairs(query, "query parameter") if query else None
    if found or not body:
        return found
    content_type = ""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            content_type = value.decode("latin-1").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return _in_pairs(body.decode("latin-1"), "form field")
    if "json" in content_type:
        try:
            return _in_json(json.loads(body), "")
        except (ValueError, RecursionError):
            return None
    # A multipart form (the app has no file fields) or any other body: the bytes themselves.
    return "the request body" if b"\x00" in body else None


class NulTextMiddleware:
    """Answer 400 for a request holding NUL (see the module's docstring) before any route.

    Inside ``BodyLimitMiddleware``, which has read the body whole (at most 1 MiB) and hands
    it over as one message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = await receive()
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        where = nul_at(scope, body)
        if where is not None:
            await refuse(scope, receive, send, ValidationError(
                f"{where} contains a NUL character (U+0000), which cannot be stored as text: "
                "nothing was saved",
                hint="remove it and send again; it usually comes from pasting binary content"))
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return message
            return await receive()

        await self.app(scope, replay, send)


__all__ = ["NulTextMiddleware", "nul_at"]
