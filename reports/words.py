"""Counted nouns in what mmlr writes (digests, pages, drawings, reasons): one rule, so that a
page, the digest and a drawing never say "1 records" or count 1,024 differently.
"""

from __future__ import annotations


def noun(n: object, one: str, many: str | None = None) -> str:
    """The noun for ``n`` things: ``one`` for exactly 1, else ``many`` (``one`` + "s")."""
    return one if n == 1 else (many or one + "s")


def plural(n: object, one: str, many: str | None = None) -> str:
    """``n`` and its noun: "1 record", "2 records", "1,024 records"."""
    number = f"{n:,}" if isinstance(n, int) else str(n)
    return f"{number} {noun(n, one, many)}"
