"""Shortening PubMed text for one-line messages (alerts, notices).

A title cut at a fixed number of characters ends mid-word ("…maintenance thera"), can split
a base letter from its combining accent or an emoji from its modifier, and, in text that
carries a character reference as PubMed sometimes does ("&amp;" kept literally), can leave
half of it ("&am") for a browser or mail client to misread. :func:`shorten` cuts at the last
word boundary that fits and marks the cut with an ellipsis.

It works on plain text: escaping for HTML or e-mail is the renderer's job and must happen
*after* shortening (Jinja's autoescape does it when the message is shown), so a cut can never
fall inside an escape we made.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

ELLIPSIS = "…"
# A character reference written out in the text ("&amp;", "&#8211;", "&#x2009;").
_ENTITY_RE = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_ENTITY_AT_END_RE = re.compile(_ENTITY_RE.pattern + r"\Z")
# Longest reference we look back for ("&thetasym;" and friends are under 12 characters).
_ENTITY_SPAN = 12
_ZWJ = "\u200d"
# Punctuation that reads wrong before an ellipsis ("maintenance: …").
_TRAILING = " \t,;:-–—/(["


def _joins_previous(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (a cut must not fall before it)."""
    code = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch == _ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0xE0100 <= code <= 0xE01EF
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xDC00 <= code <= 0xDFFF  # the low half of a surrogate pair (surrogateescape text)
    )


def _safe_cut(text: str, end: int) -> int:
    """The largest cut at or before ``end`` that keeps every combining sequence, joined emoji,
    surrogate pair and written-out character reference whole."""
    while end > 0 and end < len(text) and (
            _joins_previous(text[end]) or text[end - 1] == _ZWJ
            or 0xD800 <= ord(text[end - 1]) <= 0xDBFF):
        end -= 1
    window_start = max(0, end - _ENTITY_SPAN)
    for match in _ENTITY_RE.finditer(text, window_start, min(len(text), end + _ENTITY_SPAN)):
        if match.start() < end < match.end():
            return _safe_cut(text, match.start())
    return end


def _strip_trailing(head: str) -> str:
    """``head`` without the punctuation that reads wrong before an ellipsis, except the ";"
    that closes a character reference ("&amp;" must stay whole)."""
    while head and head[-1] in _TRAILING:
        if head[-1] == ";" and _ENTITY_AT_END_RE.search(head):
            break
        head = head[:-1]
    return head


def shorten(text: str, limit: int) -> str:
    """``text`` with its whitespace collapsed, cut to at most ``limit`` characters at a word
    boundary and ended with "…" when it was longer. One word longer than about half the limit
    (a gene name, a URL) is cut inside, but never inside a combining sequence or a character
    reference."""
    if limit < 2:
        raise ValueError("limit must leave room for a character and the ellipsis")
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    # A space right after the room means the word before it is complete.
    boundary = text.rfind(" ", 0, room + 1)
    cut = boundary if boundary > room // 2 else _safe_cut(text, room)
    head = _strip_trailing(text[:cut])
    if not head:
        # Only punctuation before the cut: keep it rather than nothing; and where even that
        # would split a sequence (safe cut 0) the ellipsis alone, never half a character.
        head = text[:_safe_cut(text, room)]
    return head + ELLIPSIS


def display_width(text: str) -> int:
    """Columns ``text`` takes in a proportional Latin font, roughly: a wide or full-width
    character (CJK, East Asian Wide/Fullwidth) as two, a combining one as none."""
    return sum(0 if _joins_previous(ch) else 2 if unicodedata.east_asian_width(ch) in "WF"
               else 1 for ch in text)


def shorten_to_width(text: str, width: int) -> str:
    """:func:`shorten`, to at most ``width`` columns (:func:`display_width`) rather than
    characters: 30 CJK characters took the room of 60 and ran into a figure's next column."""
    limit = width
    out = shorten(text, limit)
    while limit > 2 and display_width(out) > width:
        limit -= 1
        out = shorten(text, limit)
    return out


def quoted(value: Any, limit: int = 40) -> str:
    """A bad value quoted for an error message (``repr``), cut short: it may be anything a
    client sent, a whole document included."""
    return shorten(repr(value), limit)


#: The bidirectional controls that open a level and what closes each: an embedding or an
#: override (LRE, RLE, LRO, RLO) ends at POP DIRECTIONAL FORMATTING, an isolate (LRI, RLI,
#: FSI) at POP DIRECTIONAL ISOLATE.
_PDF, _PDI = "\u202c", "\u2069"
_OPENS_EMBEDDING = frozenset("\u202a\u202b\u202d\u202e")
_OPENS_ISOLATE = frozenset("\u2066\u2067\u2068")
_BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")


#: The bidirectional embeddings and overrides (U+202A-U+202E): they reorder the text after
#: them, numbers included ("HR 0.41" shown as "14.0 RH"), and right-to-left text needs none
#: of them. What people type is refused with them, in the web app
#: (``screening.web.refused_text``) and in ``MMLR_ANALYSES_FILE`` (``reports.analyses``).
BIDI_OVERRIDES = "".join(chr(code) for code in range(0x202A, 0x202F))
_OVERRIDE_RE = re.compile(f"[{BIDI_OVERRIDES}]")


def bidi_override(text: str) -> str | None:
    """The first bidirectional embedding or override in ``text`` as "U+202E", or None."""
    match = _OVERRIDE_RE.search(text)
    return f"U+{ord(match.group()):04X}" if match else None


def closed_bidi(text: str) -> str:
    """``text`` with every bidirectional embedding, override or isolate it leaves open closed
    at its end, so that it reorders nothing shown after it.

    A PubMed title ending in an unclosed RIGHT-TO-LEFT OVERRIDE showed the rest of its line
    (the journal, a trial's HR beside it) reversed, until the end of the paragraph, which in
    a page or an e-mail can be far beyond the title. The web app refuses these characters
    in what people send (``screening.web.refused_text``), but PubMed text is stored as PubMed
    wrote it; closing the levels at display keeps it whole and harmless. The closing follows
    the Unicode bidirectional algorithm (UAX #9, X6a): a PDF inside an open isolate closes
    nothing, a PDI closes its isolate and every embedding opened inside it."""
    if not _BIDI_RE.search(text):
        return text
    stack: list[str] = []
    for match in _BIDI_RE.finditer(text):
        char = match.group()
        if char in _OPENS_EMBEDDING:
            stack.append(_PDF)
        elif char in _OPENS_ISOLATE:
            stack.append(_PDI)
        elif char == _PDF:
            if stack and stack[-1] == _PDF:
                stack.pop()
        elif _PDI in stack:  # a PDI with an isolate open
            while stack.pop() != _PDI:
                pass
    return text + "".join(reversed(stack))


def closed_bidi_value(value: Any) -> Any:
    """A template value with its bidirectional levels closed (:func:`closed_bidi`), for
    Jinja's ``finalize``: text (escaped markup included) gets its closers, anything else
    passes through for Jinja to print."""
    if isinstance(value, str):
        closed = closed_bidi(value)
        # Markup + str escapes the str: the closers hold nothing to escape, and the result
        # stays Markup, so autoescape does not escape the markup a second time.
        return value if closed is value else value + closed[len(value):]
    return value
