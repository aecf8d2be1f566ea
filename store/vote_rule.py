"""Who may cast a new vote on a record under two independent screeners: one rule for both
stages (title/abstract votes in ``screening.web.decisions``, full-text votes in
``store.fulltext``), so the pages' "may vote" and the refusals of a vote never drift apart.

Both stages name a record's place the same way where it matters here: ``resolved`` (settled:
by agreement or a resolution) and ``conflict`` (two people's latest votes differ); every
other state (no vote yet, one vote awaiting its second) is open. Each stage words its own
refusal; this module only says which one applies.
"""

from __future__ import annotations

from typing import Literal

#: Why a vote is refused: the record is settled (only a resolution changes it), or it is a
#: conflict and the voter is not one of its two screeners (a third vote does not settle it —
#: its screeners may still change their votes, which is how a discussion settles it).
VoteBar = Literal["settled", "third_person"]


def vote_bar(state: str, *, voted: bool) -> VoteBar | None:
    """What stops a vote on a record in ``state`` by someone who has (``voted``) or has not
    voted on it yet; None when the vote may be cast."""
    if state == "resolved":
        return "settled"
    if state == "conflict" and not voted:
        return "third_person"
    return None


def may_vote(*, curator: bool, dual: bool, state: str, voted: bool) -> bool:
    """Whether a person may record a judgement now: curators only; with one screener always
    (the newest decision counts), with two unless :func:`vote_bar` stops it."""
    if not curator:
        return False
    return not dual or vote_bar(state, voted=voted) is None


__all__ = ["VoteBar", "may_vote", "vote_bar"]
