"""The one rule for a new vote under dual screening, shared by both stages."""

from __future__ import annotations

import pytest

from store.vote_rule import may_vote, vote_bar


@pytest.mark.parametrize(("state", "voted", "bar"), [
    ("unscreened", False, None),  # title/abstract: no vote yet
    ("awaiting", False, None),  # full text: no vote yet
    ("awaiting_second", False, None),  # the second screener
    ("awaiting_second", True, None),  # the first screener changing their vote
    ("conflict", True, None),  # one of the two changes their vote: how a discussion settles it
    ("conflict", False, "third_person"),
    ("resolved", True, "settled"),
    ("resolved", False, "settled"),
])
def test_vote_bar(state: str, voted: bool, bar: str | None) -> None:
    assert vote_bar(state, voted=voted) == bar


def test_may_vote_curators_only_and_single_screening_always() -> None:
    assert not may_vote(curator=False, dual=False, state="unscreened", voted=False)
    assert not may_vote(curator=False, dual=True, state="unscreened", voted=False)
    # One screener: the newest decision counts, whatever the state.
    assert may_vote(curator=True, dual=False, state="resolved", voted=False)
    assert may_vote(curator=True, dual=False, state="conflict", voted=False)
    assert not may_vote(curator=True, dual=True, state="resolved", voted=True)
    assert not may_vote(curator=True, dual=True, state="conflict", voted=False)
    assert may_vote(curator=True, dual=True, state="conflict", voted=True)
