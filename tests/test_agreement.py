"""The dual-screening rules as pure functions: agreement, state, training labels, and Cohen's
kappa against hand-computed examples (and scikit-learn as a second opinion)."""

from __future__ import annotations

import pytest

from screening.agreement import (
    Vote,
    agreed_decision,
    blind_pair,
    cohen_kappa,
    decision_after_vote,
    latest_votes,
    provisional_label,
    record_state,
    screening_agreement,
)


@pytest.mark.parametrize(("first", "second", "expected"), [
    ("include", "include", "include"),
    ("exclude", "exclude", "exclude"),
    ("maybe", "maybe", "maybe"),  # both want the full text: agreed, never an exclude
    ("include", "maybe", None),
    ("maybe", "include", None),
    ("maybe", "exclude", None),  # a maybe is never turned into an exclude
    ("exclude", "maybe", None),
    ("include", "exclude", None),
])
def test_two_screeners_agree_only_on_the_same_decision(first: str, second: str,
                                                       expected: str | None) -> None:
    votes = [Vote(id=1, user_id=10, decision=first), Vote(id=2, user_id=20, decision=second)]
    assert decision_after_vote(None, votes) == expected


def test_one_person_is_never_an_agreement() -> None:
    assert agreed_decision(["include"]) is None
    assert agreed_decision([]) is None
    same_person = [Vote(id=1, user_id=10, decision="include"),
                   Vote(id=2, user_id=10, decision="include")]
    assert decision_after_vote(None, same_person) is None
    # votes without a user (imported rows) are nobody's: no second screener
    anonymous = [Vote(id=1, user_id=10, decision="exclude"),
                 Vote(id=2, user_id=None, decision="exclude")]
    assert decision_after_vote(None, anonymous) is None
    assert agreed_decision(["include", "include", "exclude"]) is None


def test_latest_vote_of_each_screener_counts_and_a_resolved_record_stays() -> None:
    votes = [Vote(id=1, user_id=10, decision="include"),
             Vote(id=2, user_id=20, decision="exclude"),
             Vote(id=3, user_id=10, decision="exclude")]  # changed after discussion
    assert {u: v.decision for u, v in latest_votes(votes).items()} == {10: "exclude",
                                                                       20: "exclude"}
    assert decision_after_vote(None, votes) == "exclude"
    assert decision_after_vote("include", votes) == "include"  # sticky once resolved
    assert decision_after_vote(None, list(reversed(votes))) == "exclude"  # order by id


def test_record_state() -> None:
    assert record_state(None, 0) == "unscreened"
    assert record_state(None, 1) == "awaiting_second"
    assert record_state(None, 2) == "conflict"
    assert record_state(None, 3) == "conflict"
    assert record_state("exclude", 1) == "resolved"  # e.g. decided under single screening


def test_provisional_label_is_recall_first() -> None:
    assert provisional_label(["include", "exclude"]) == 1
    assert provisional_label(["maybe", "exclude"]) == 1
    assert provisional_label(["maybe"]) == 1
    assert provisional_label(["exclude"]) == 0
    assert provisional_label(["exclude", "exclude"]) == 0


def test_blind_pair_is_the_first_two_screeners_votes_cast_blind() -> None:
    votes = [Vote(id=5, user_id=20, decision="exclude"),
             Vote(id=3, user_id=10, decision="include"),
             Vote(id=7, user_id=10, decision="exclude"),  # changed after seeing the other
             Vote(id=8, user_id=20, decision="include"),  # so was this one
             Vote(id=9, user_id=30, decision="maybe")]  # a third person
    assert blind_pair(votes) == ("include", "exclude")
    assert blind_pair(votes[:1]) is None
    assert blind_pair([Vote(id=1, user_id=10, decision="include"),
                       Vote(id=2, user_id=10, decision="exclude")]) is None


def test_a_vote_corrected_before_the_second_screener_voted_is_still_blind() -> None:
    """A misclick corrected while nobody else had voted was counted as the judgement (its
    first vote): a disagreement on a record both screeners excluded."""
    votes = [Vote(id=1, user_id=10, decision="include"),
             Vote(id=2, user_id=10, decision="exclude"),  # corrected, still alone
             Vote(id=3, user_id=20, decision="exclude"),
             Vote(id=4, user_id=20, decision="include")]  # after seeing the other
    assert blind_pair(votes) == ("exclude", "exclude")
    assert blind_pair([Vote(id=1, user_id=None, decision="include"), *votes[2:]]) is None


# ----------------------------------------------------------------------------- kappa
def test_cohen_kappa_binary_hand_computed() -> None:
    # 4 include/include, 3 exclude/exclude, 2 include/exclude, 1 exclude/include:
    # p_o = 7/10; rater 1 includes 6/10, rater 2 5/10; p_e = .6·.5 + .4·.5 = .5;
    # kappa = (.7 − .5) / (1 − .5) = .4
    pairs = ([("include", "include")] * 4 + [("exclude", "exclude")] * 3
             + [("include", "exclude")] * 2 + [("exclude", "include")])
    result = cohen_kappa(pairs, ("include", "exclude"))
    assert result.n == 10
    assert result.observed == pytest.approx(0.7, abs=1e-12)
    assert result.expected == pytest.approx(0.5, abs=1e-12)
    assert result.kappa == pytest.approx(0.4, abs=1e-12)


def test_screening_agreement_three_categories_and_collapsed_hand_computed() -> None:
    pairs = ([("include", "include")] * 3 + [("maybe", "maybe")] + [("exclude", "exclude")] * 3
             + [("include", "maybe"), ("maybe", "exclude"), ("exclude", "include")])
    stats = screening_agreement(pairs)
    # three categories: p_o = 7/10; both raters' marginals are include .4, maybe .2,
    # exclude .4, so p_e = .16 + .04 + .16 = .36; kappa = (.7 − .36) / .64 = .53125
    assert stats.three_way.n == 10
    assert stats.three_way.observed == pytest.approx(0.7, abs=1e-12)
    assert stats.three_way.kappa == pytest.approx(0.53125, abs=1e-12)
    # include/maybe vs exclude: 5 II, 3 EE, 1 IE, 1 EI: p_o = .8; marginals .6/.4 for both,
    # p_e = .36 + .16 = .52; kappa = (.8 − .52) / .48 = 7/12
    assert stats.binary.observed == pytest.approx(0.8, abs=1e-12)
    assert stats.binary.kappa == pytest.approx(7 / 12, abs=1e-12)
    from sklearn.metrics import cohen_kappa_score

    first, second = zip(*pairs, strict=True)
    assert stats.three_way.kappa == pytest.approx(cohen_kappa_score(first, second), abs=1e-12)
    assert stats.to_json()["binary"] == {"n": 10, "raw_agreement": pytest.approx(0.8),
                                         "expected": pytest.approx(0.52),
                                         "kappa": pytest.approx(7 / 12)}


def test_kappa_undefined_cases_and_unknown_categories() -> None:
    empty = cohen_kappa([], ("include", "exclude"))
    assert (empty.n, empty.observed, empty.kappa) == (0, None, None)
    # both raters always said exclude: perfect raw agreement, chance agreement 1, no kappa
    same = cohen_kappa([("exclude", "exclude")] * 3, ("include", "exclude"))
    assert (same.observed, same.expected, same.kappa) == (1.0, 1.0, None)
    disagree = cohen_kappa([("include", "exclude"), ("exclude", "include")],
                           ("include", "exclude"))
    assert disagree.kappa == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="not in"):
        cohen_kappa([("include", "perhaps")], ("include", "exclude"))


def test_kappa_of_fewer_than_two_pairs_is_undefined_not_zero() -> None:
    # One disagreeing pair: p_o = 0, p_e = 1·0 + 0·1 = 0, so the formula gives 0 — a number
    # that says "chance-level agreement" about a single record.
    one = cohen_kappa([("include", "exclude")], ("include", "exclude"))
    assert (one.n, one.observed, one.expected) == (1, 0.0, 0.0)
    assert one.kappa is None
    assert one.kappa_note == "not enough paired votes"
    # one agreeing pair: p_e = 1 as well, and still the count is what is missing
    agreeing = cohen_kappa([("exclude", "exclude")], ("include", "exclude"))
    assert (agreeing.kappa, agreeing.kappa_note) == (None, "not enough paired votes")
    assert cohen_kappa([], ("include", "exclude")).kappa_note == "not enough paired votes"
    stats = screening_agreement([("include", "maybe")])
    assert stats.to_json()["three_way"] == {"n": 1, "raw_agreement": 0.0, "expected": 0.0,
                                            "kappa": None}
    # from two pairs on, kappa is a number (here: perfect disagreement)
    two = cohen_kappa([("include", "exclude"), ("exclude", "include")], ("include", "exclude"))
    assert two.kappa == pytest.approx(-1.0) and two.kappa_note is None


def test_kappa_with_every_vote_in_one_category_is_undefined() -> None:
    # include/maybe vs exclude: every vote is include-like, p_e = 1·1 = 1, kappa = 0/0
    stats = screening_agreement([("include", "maybe"), ("maybe", "include"),
                                 ("include", "include")])
    assert stats.binary.expected == 1.0 and stats.binary.kappa is None
    assert stats.binary.kappa_note == "undefined: all votes in one category"
    assert stats.to_json()["binary"]["kappa"] is None
    # the three categories are not all the same: that kappa is defined
    # (p_o = 1/3; marginals include 2/3 & 2/3, maybe 1/3 & 1/3: p_e = 5/9; kappa = -1/2)
    assert stats.three_way.kappa == pytest.approx(-0.5, abs=1e-12)
    assert stats.three_way.kappa_note is None
