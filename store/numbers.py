"""The one rule for a number a person types or a file gives: a decimal as papers print it.

``float()`` alone is not it. It also reads "1_000" (a Python literal), "٣" or "３" (digits of
other scripts) and " 0.5\\u2009" as numbers, so an HR typed "0.7_5" would be stored as 0.75
and the typing error never seen. What mmlr reads instead: ASCII digits, an optional sign, one
decimal point, an optional exponent ("1.2e-5", as P values are printed). The words ``inf`` and
``nan`` (any case) are read too, so the callers that refuse them can say *not finite*, which
is more useful than *not a number*.

A number that comes already parsed (a JSON body's) goes through :func:`as_float`: ``float()``
of an integer beyond a float's range raises OverflowError, which no caller expects.
"""

from __future__ import annotations

import math
import re

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def is_decimal(text: str) -> bool:
    """Whether ``text`` (exactly, no spaces) is a finite decimal number as defined above."""
    return _DECIMAL.fullmatch(text) is not None


def parse_decimal(text: str) -> float:
    """``text`` (spaces around it ignored) as a float, else ValueError whose message names
    the value (its first 30 characters) and, where one helps, how to write it:
    "'0,75' is not a number (use a decimal point, not a comma)"."""
    value = text.strip()
    if _DECIMAL.fullmatch(value) or _NOT_FINITE.fullmatch(value):
        return float(value)
    hint = _hint(value)
    raise ValueError(f"{value[:30]!r} is not a number" + (f" ({hint})" if hint else ""))


def as_float(value: float) -> float:
    """A parsed number (a JSON integer or float) as a float. An integer too large for one is
    infinite, as ``1e999`` is read, so the caller says *not finite*: ``float(10**400)`` raises
    OverflowError, which reached the API as a 500."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _hint(value: str) -> str:
    if "," in value:
        return "use a decimal point, not a comma"
    if any(c.isdigit() and not c.isascii() for c in value):
        return "write it with the digits 0-9"
    if "_" in value:
        return "write it without underscores"
    return ""


__all__ = ["as_float", "is_decimal", "parse_decimal"]
