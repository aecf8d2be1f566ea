"""Bounding the size of ``IN (...)`` lists: one size and one way to split for every query that
filters on a list of ids (PMIDs, mostly), so no statement grows with the review."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: Ids per ``IN (...)`` list: far below SQLite's and PostgreSQL's parameter limits.
IN_CHUNK = 500


def in_chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


__all__ = ["IN_CHUNK", "in_chunks"]
