"""Judgements sent twice: a client retrying a POST after a timeout (its first attempt may well
have been stored), a form submitted twice. Storing the copy would count one judgement twice
(in the decision history, the digest's "decisions made", the stopping rule's screened counts),
so the functions that record a screening decision, a resolution or a full-text judgement first
look for the same judgement by the same person that still counts, and return it instead.

"Still counts" is each rule's own: under single screening the newest judgement on the record
(a colleague's decision since then makes a repeat a real change, which is stored); for a vote
under dual screening the person's latest vote (what the other screener did since changes
nothing about it). A different label, reason or note is a new judgement and is stored: the
history keeps every change of mind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

Row = TypeVar("Row")


@dataclass(frozen=True)
class Recorded(Generic[Row]):
    """A judgement as it stands after a request: ``row``, and whether this request stored it
    (``created``) or found it stored already (a repeat: nothing was written)."""

    row: Row
    created: bool


__all__ = ["Recorded"]
