"""Dual screening rules, as pure functions: when two screeners agree, what state a record is
in, what an unresolved record teaches the classifier, and how well screeners agree.

With ``settings.dual_screening`` (``MMLR_SCREENERS_PER_RECORD=2``) each record is screened by
two people who vote without seeing each other's vote (Cochrane MECIR C39/C40). The rules:

- **Agreement.** A record is resolved when at least two different screeners' latest votes
  are all the same decision: include + include, exclude + exclude, and also maybe + maybe
  (resolved as ``maybe``: both want the full text). Any other pair is a *conflict* —
  including maybe + include and maybe + exclude: a ``maybe`` is never silently turned into an
  exclude (recall first) nor into an include (that would skip the discussion).
- **Sticky outcome.** Once resolved (by agreement, a resolution, or a decision made under
  single screening), later votes no longer change the record; only a new resolution does.
  Before that, a screener may change their vote — which is how a conflict is settled by
  discussion.
- **Votes without a user** (imported rows) are not a screener: "two different people"
  cannot be shown for them.
- **Training label of an unresolved record** (``provisional_label``): include when any
  screener's latest vote is include or maybe, exclude only when every vote is exclude.
- **Agreement statistics** use the votes cast blind (``blind_pair``): the first screener's
  latest vote before the second screener's first, and that first vote. A vote changed after
  seeing the other one is not independent. Kappa
  is left undefined (None), never shown as a number, with fewer than ``MIN_KAPPA_PAIRS``
  pairs or when chance agreement is 1 (both screeners always chose one and the same
  category).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

VOTE = "vote"
RESOLUTION = "resolution"
#: A decision made under single screening: it settles the record, and is no blind vote (the
#: record page shows the decision it changes), so no agreement statistic counts it.
DECISION = "decision"
INCLUDE_LIKE = frozenset({"include", "maybe"})
THREE_CATEGORIES: tuple[str, ...] = ("include", "maybe", "exclude")
BINARY_CATEGORIES: tuple[str, ...] = ("include", "exclude")

State = Literal["unscreened", "awaiting_second", "conflict", "resolved"]
# One pair gives a kappa of 0 or undefined whatever the screeners think: not a measurement.
MIN_KAPPA_PAIRS = 2


@dataclass(frozen=True)
class Vote:
    """One vote (a ``Decision`` row of kind ``vote``), as the rules need it."""

    id: int
    user_id: int | None
    decision: str


def latest_votes(votes: Iterable[Vote]) -> dict[int, Vote]:
    """Each screener's newest vote (by id), keyed by user id; votes without a user are left
    out (see the module docstring)."""
    latest: dict[int, Vote] = {}
    for vote in sorted(votes, key=lambda v: v.id):
        if vote.user_id is not None:
            latest[vote.user_id] = vote
    return latest


def agreed_decision(decisions: Sequence[str]) -> str | None:
    """The decision the screeners agree on, or None (fewer than two, or any difference)."""
    if len(decisions) < 2 or len(set(decisions)) != 1:
        return None
    return decisions[0]


def decision_after_vote(current: str | None, votes: Iterable[Vote]) -> str | None:
    """The record's resolved decision once a vote has been added (dual screening): an
    already-resolved record keeps its decision; otherwise the screeners' latest votes decide."""
    if current is not None:
        return current
    return agreed_decision([v.decision for v in latest_votes(votes).values()])


def record_state(decision: str | None, n_screeners: int) -> State:
    """Where a record stands under dual screening."""
    if decision is not None:
        return "resolved"
    if n_screeners >= 2:
        return "conflict"
    return "awaiting_second" if n_screeners == 1 else "unscreened"


def provisional_label(decisions: Iterable[str]) -> int:
    """Training label (1 include, 0 exclude) of a record with votes but no resolution: recall
    first, so one include or maybe is enough, and exclude needs every screener."""
    return 1 if any(d in INCLUDE_LIKE for d in decisions) else 0


def blind_pair(votes: Iterable[Vote]) -> tuple[str, str] | None:
    """The blind judgements of the first two screeners of a record (in the order they voted),
    or None when fewer than two people voted: the first screener's *latest* vote cast before
    the second screener's first, and that first vote of the second.

    Both are blind: nothing of a record shows its votes before a second person votes, so a
    first screener correcting a misclick then is still judging alone (taking their first
    vote counted a disagreement on records that never conflicted: κ 0 where both screeners
    agreed on all four records). Every vote after the second screener's first is cast seeing
    the other and is not independent."""
    ordered = sorted((v for v in votes if v.user_id is not None), key=lambda v: v.id)
    if not ordered:
        return None
    first = ordered[0]
    for vote in ordered[1:]:
        if vote.user_id == first.user_id:
            first = vote  # still blind: the second screener has not voted yet
        else:
            return first.decision, vote.decision
    return None


# ----------------------------------------------------------------------------- kappa
@dataclass(frozen=True)
class Agreement:
    """Agreement of two raters over ``n`` items: observed (raw) agreement p_o, chance
    agreement p_e from the raters' own marginals, and Cohen's kappa (p_o − p_e)/(1 − p_e).
    ``kappa`` is None when undefined: fewer than ``MIN_KAPPA_PAIRS`` items, or p_e = 1 (both
    raters used one and the same category); ``kappa_note`` says which."""

    n: int
    observed: float | None
    expected: float | None
    kappa: float | None

    @property
    def kappa_note(self) -> str | None:
        """Why ``kappa`` is undefined, in words for the page; None when it is defined."""
        if self.kappa is not None:
            return None
        if self.n < MIN_KAPPA_PAIRS:
            return "not enough paired votes"
        return "undefined: all votes in one category"


def cohen_kappa(pairs: Sequence[tuple[str, str]], categories: Sequence[str]) -> Agreement:
    """Cohen's kappa of (rater 1, rater 2) pairs over ``categories``."""
    unknown = {c for pair in pairs for c in pair} - set(categories)
    if unknown:
        raise ValueError(f"categories {sorted(unknown)} are not in {list(categories)}")
    n = len(pairs)
    if n == 0:
        return Agreement(n=0, observed=None, expected=None, kappa=None)
    observed = sum(a == b for a, b in pairs) / n
    expected = sum((sum(a == c for a, _ in pairs) / n) * (sum(b == c for _, b in pairs) / n)
                   for c in categories)
    defined = n >= MIN_KAPPA_PAIRS and expected < 1.0
    kappa = (observed - expected) / (1.0 - expected) if defined else None
    return Agreement(n=n, observed=observed, expected=expected, kappa=kappa)


def binary(decision: str) -> str:
    """include/maybe → include, exclude → exclude: the question that matters for recall."""
    return "include" if decision in INCLUDE_LIKE else "exclude"


@dataclass(frozen=True)
class ScreeningAgreement:
    """Agreement of the blind votes: include/maybe vs exclude, and the three categories."""

    binary: Agreement
    three_way: Agreement

    def to_json(self) -> dict[str, dict[str, float | int | None]]:
        return {name: {"n": a.n, "raw_agreement": a.observed, "expected": a.expected,
                       "kappa": a.kappa}
                for name, a in (("binary", self.binary), ("three_way", self.three_way))}


def screening_agreement(pairs: Sequence[tuple[str, str]]) -> ScreeningAgreement:
    """Both kappas over the blind pairs (``blind_pair`` of every record screened twice)."""
    return ScreeningAgreement(
        binary=cohen_kappa([(binary(a), binary(b)) for a, b in pairs], BINARY_CATEGORIES),
        three_way=cohen_kappa(list(pairs), THREE_CATEGORIES),
    )
