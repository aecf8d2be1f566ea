"""Refuse, anywhere in a request (the address, a query parameter, a form field, a JSON string
or key), the characters no field of mmlr may hold:

- NUL (U+0000). PostgreSQL cannot store it in text (``invalid byte sequence``/``cannot
  contain NUL``), and SQLite's LIKE stops reading a pattern at it, so ``/search?q=%00``
  matched every trial there. Nobody types it: it comes from pasting binary content or from a
  client's bug.
- The bidirectional embeddings and overrides (U+202A-U+202E). A trial named "GBRAM \u202e0001"
  showed the digest's "HR 0.41 (0.19–0.91)" after it as "(19.0–91.0) 14.0 RH": numbers a
  reader takes for the result. Right-to-left text needs none of them (the letters carry
  their direction), and the isolates (U+2066-U+2069) and marks (U+200E, U+200F), which
  cannot reorder the text around them, are kept: an isolate left open is closed where the
  text is shown (``store.text.closed_bidi``, as for PubMed's text, stored as written).

One check before any route, rather than one in each of the app's forms and the API's bodies,
so that a new field cannot forget it; the answer is 400 naming where the character was, and
nothing is saved. Other control characters are each field's business (a one-line field
refuses line breaks and tabs, ``extraction.py``; a note may have line breaks).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screening.web.body_limit import refuse
from screening.web.csrf import FIELD as CSRF_FIELD_NAME
from screening.web.csrf import from_another_site
from screening.web.errors import is_api
from store.errors import ValidationError
from store.text import BIDI_OVERRIDES

#: Each refused character and why, in the words of the answer.
REFUSED: dict[str, str] = {
    "\x00": "a NUL character (U+0000), which cannot be stored as text",
    **{char: f"a bidirectional control (U+{ord(char):04X}), which shows the text after it "
             "reordered, numbers reversed" for char in BIDI_OVERRIDES},
}
#: Half of a UTF-16 surrogate pair (U+D800-U+DFFF), which JSON's "\\ud83d" escapes can
#: carry alone (a client that cut a string by UTF-16 length, halving an emoji): no text can
#: be stored with one, and it was a UnicodeEncodeError at the database, a 500.
_SURROGATES = "\ud800-\udfff"
_REFUSED = re.compile("[" + "".join(map(re.escape, REFUSED)) + _SURROGATES + "]")


def _why(char: str) -> str:
    """What is wrong with a refused character, in the words of the answer."""
    return REFUSED.get(char) or (f"half of a UTF-16 surrogate pair (U+{ord(char):04X}), "
                                 "which is no character and cannot be stored as text")


def _bad(text: str) -> str | None:
    """The first refused character of ``text``, or None."""
    match = _REFUSED.search(text)
    return match.group() if match else None


def _clean(text: str) -> str:
    return _REFUSED.sub("", text)


def _in_pairs(encoded: str, kind: str) -> tuple[str, str] | None:
    for name, value in parse_qsl(encoded, keep_blank_values=True, errors="replace"):
        char = _bad(name) or _bad(value)
        if char:
            return f"the {kind} {_clean(name)!r}", char
    return None


def _in_json(value: Any, at: str) -> tuple[str, str] | None:
    if isinstance(value, str):
        char = _bad(value)
        return ((f"the JSON field {at!r}" if at else "the JSON body"), char) if char else None
    if isinstance(value, dict):
        for key, item in value.items():
            char = _bad(key)
            if char:
                return (f"a JSON key in {at!r}" if at else "a JSON key"), char
            found = _in_json(item, f"{at}.{key}" if at else key)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _in_json(item, f"{at}[{index}]")
            if found:
                return found
    return None


def refused_at(scope: Scope, body: bytes) -> tuple[str, str] | None:
    """Where the request holds a refused character, in words ("the form field 'note'"), and
    the character; or None.

    A JSON body that does not parse is left to the route, which says what is wrong with it."""
    char = _bad(scope.get("path", ""))
    if char:
        return "the address", char
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
    char = _bad(body.decode("utf-8", errors="replace"))
    return ("the request body", char) if char else None


def sent_form_fields(scope: Scope, body: bytes) -> list[tuple[str, str]]:
    """The fields of a refused form as the error page lists them: the refused characters
    taken out, without the CSRF token, passwords or empty fields; none for another body."""
    content_type = next((value.decode("latin-1").lower() for name, value in
                         scope.get("headers", ()) if name == b"content-type"), "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return []
    return [(_clean(name), _clean(value)) for name, value in
            parse_qsl(body.decode("latin-1"), keep_blank_values=True, errors="replace",
                      encoding="utf-8")
            if name != CSRF_FIELD_NAME and "password" not in name and value.strip()]


class RefusedTextMiddleware:
    """Answer 400 for a request holding a refused character (see the module's docstring)
    before any route.

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
        found = refused_at(scope, body)
        if found is not None:
            where, char = found
            if not is_api(scope) and not from_another_site(Request(scope)):
                # What was typed, for the error page to give back (without the refused
                # characters): a note or five support texts lost over one pasted NUL. Not
                # for a form another site sent: mmlr would show that site's text.
                scope.setdefault("state", {})["refused_form"] = sent_form_fields(scope, body)
            await refuse(scope, receive, send, ValidationError(
                f"{where} contains {_why(char)}: nothing was saved",
                hint="remove it and send again; it usually comes from pasting binary content"
                if char == "\x00" else "send the whole character (both halves of the pair), "
                "or none of it" if char not in REFUSED else "remove it and send again; text "
                "in a right-to-left script needs no such control"))
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return message
            return await receive()

        await self.app(scope, replay, send)


__all__ = ["REFUSED", "RefusedTextMiddleware", "refused_at"]
