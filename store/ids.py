"""The one rule for an id or PMID typed by a person or read from a link: ASCII digits naming a
row an integer column can hold. ``str.isdigit()`` alone is not it: it accepts "²", which
``int()`` refuses, and any length, which the database refuses (SQLite overflows past 2^63)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from store.errors import ValidationError

#: The largest id or PMID a request may name: what an INTEGER column holds on both engines
#: (PostgreSQL's int4; SQLite's own limit is 2^63 − 1, beyond which it raises OverflowError).
#: PMIDs are below 10^8.
MAX_ID = 2**31 - 1


def is_ascii_number(text: str) -> bool:
    """Whether ``text`` is written in ASCII digits only (a number, whatever its size)."""
    return text.isascii() and text.isdigit()


def parse_id(text: str) -> int | None:
    """``text`` (spaces around it ignored) as an id from 1 to :data:`MAX_ID`, else None."""
    text = text.strip()
    if not is_ascii_number(text) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def id_of(value: Any) -> int | None:
    """A value a form or a JSON body sent as an id: a whole number (never a bool: ``true`` is 1
    to Python) or ASCII digits, 1 to :data:`MAX_ID`; None for anything else (1.0 and "1.0"
    name no row)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return parse_id(str(value))


_SEPARATORS = re.compile(r"[\s,;]+")


def pmids_in(text: str, place: Callable[[int], str]) -> list[int]:
    """The PMIDs written in ``text``: one or more a line, separated by spaces, commas or
    semicolons; ``#`` starts a comment. All are checked before any is used (a bad one must not
    leave a half-done fetch behind): ValidationError naming ``place(line number)`` and the
    token. Repeats are kept (the caller fetches each PMID once)."""
    pmids: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        for token in _SEPARATORS.split(raw.split("#", 1)[0].strip()):
            if not token:
                continue
            pmid = parse_id(token)
            if pmid is None:
                raise ValidationError(f"{place(lineno)}: {token!r} is not a PMID",
                                      hint=f"a PMID is a whole number from 1 to {MAX_ID:,}; "
                                           "one or more a line, separated by spaces or commas")
            pmids.append(pmid)
    return pmids


__all__ = ["MAX_ID", "is_ascii_number", "parse_id", "pmids_in"]
