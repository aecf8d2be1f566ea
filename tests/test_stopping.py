"""The stopping tests (`screening.stopping`): known answers, the p-value's calibration under
the null by simulation, the window after the last arrival on a real database, and the whole
pipeline on a real labelled review."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import hypergeom
from sqlmodel import Session, select

from screening.config import ScreeningConfig
from screening.health import prioritised_order_test, screening_health
from screening.hypergeometric import hypergeom_cdf
from screening.simulate import (
    StopPoint,
    choose_priors,
    load_dataset,
    run_active_learning,
    screening_sequence,
    simulate,
)
from screening.stopping import (
    ALPHA,
    audit_p_value,
    first_stop,
    missed_for_failure,
    ranked_p_value,
    ranked_p_values,
    recall_text,
)
from store.models import Record, User, utcnow


def _missed_by_definition(found: int, target: float) -> int:
    """The smallest number of unscreened includes with found / (found + missed) < target,
    by counting up (not the closed form under test)."""
    missed = 0
    while found + missed == 0 or found / (found + missed) >= target:
        missed += 1
    return missed


@pytest.mark.parametrize("total", [1, 7, 60, 1_100, 20_000, 250_000])
def test_our_hypergeometric_cdf_agrees_with_scipy_stats(total: int) -> None:
    """``screening.hypergeometric`` replaces ``scipy.stats.hypergeom.cdf`` (a second's import);
    random arguments over the whole support and beyond it, and the upper tail far above the
    mode, where summing downwards from k would start from a term that underflows."""
    rng = np.random.default_rng(total)
    successes = rng.integers(0, total + 1, 3_000)
    draws = rng.integers(0, total + 1, 3_000)
    k = rng.integers(-2, np.minimum(draws, successes) + 3)
    want = hypergeom.cdf(k, total, successes, draws)
    got = hypergeom_cdf(k, np.full(3_000, total), successes, draws)
    # The first term's log-beta functions are of the order of the urn's size: about 1e-15
    # relative each, so 1e-9 of the probability at 250,000 records (shown to 4 decimals).
    assert got == pytest.approx(want, rel=1e-8, abs=1e-300)
    far_above = hypergeom_cdf(np.array([900]), np.array([total]), np.array([total // 2]),
                              np.array([min(total, 1_000)]))
    assert far_above[0] == pytest.approx(hypergeom.cdf(900, total, total // 2,
                                                       min(total, 1_000)), rel=1e-12)


@pytest.mark.parametrize("found", [0, 1, 5, 18, 19, 20, 95, 96, 190, 1000])
@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99])
def test_missed_for_failure_is_the_boundary_of_the_null(found: int, target: float) -> None:
    assert missed_for_failure(found, target) == _missed_by_definition(found, target)


def test_known_answer_last_100_excludes() -> None:
    # 95 includes found, the last 100 screened all excludes, 1000 unscreened: recall < 95%
    # needs 6 missed, so p(n=100) is drawing 100 excludes from 1,100 records holding 6 includes.
    y = np.zeros(1000, dtype=int)
    y[np.linspace(0, 899, 95).astype(int)] = 1
    p = ranked_p_values(y, 1000, 0.95)
    assert p[99] == pytest.approx(hypergeom.cdf(0, 1100, 6, 100), rel=1e-12)
    assert p[99] == pytest.approx((1 - 100 / 1100) ** 6, abs=0.01)  # sanity of the magnitude
    # each further clean record lowers p; the first include (n = 101) raises it
    assert np.all(np.diff(p[:100]) < 0) and p[100] > p[99]


def test_every_sample_size_against_an_explicit_loop() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        y = (rng.random(300) < rng.uniform(0.02, 0.3)).astype(int)
        unscreened = int(rng.integers(0, 400))
        start = int(rng.integers(0, 50))
        p = ranked_p_values(y, unscreened, 0.95, start=start)
        assert len(p) == len(y) - start
        found = int(y.sum())
        m = _missed_by_definition(found, 0.95)
        for n in range(1, len(y) - start + 1):
            k = int(y[-n:].sum())
            urn, urn_inc = unscreened + n, k + m
            want = 0.0 if urn_inc > urn else hypergeom.cdf(k, urn, urn_inc, n)
            assert p[n - 1] == pytest.approx(want, abs=1e-12)
        res = ranked_p_value(y, unscreened, start=start)
        if unscreened:
            assert res.p_value == pytest.approx(float(p.min()))
            assert res.sample_includes == int(y[len(y) - res.sample:].sum())
            assert p[res.sample - 1] == res.p_value


def test_edges_every_record_screened_nothing_since_arrival_impossible_null() -> None:
    nothing = ranked_p_value(np.array([], dtype=int), 10)
    assert nothing.p_value == 1.0 and nothing.describe().endswith("no record has been "
                                                                  "screened yet")
    done = ranked_p_value(np.array([1, 0, 0]), 0)
    assert done.p_value == 0.0 and done.describe() == "every record has been screened"
    waiting = ranked_p_value(np.array([1, 0, 0]), 10, start=3)
    assert waiting.p_value == 1.0 and not waiting.rejects
    assert "since the last unscreened record arrived" in waiting.describe()
    # 95 found needs 6 missed; 2 unscreened + a 1-record sample cannot hold 6 includes
    y = np.r_[np.ones(95, dtype=int), 0]
    assert ranked_p_values(y, 2, 0.95)[0] == 0.0
    # the audit form agrees on the same question
    assert audit_p_value(found=95, pool=3, sample=1, sample_includes=0,
                         target_recall=0.95) == 0.0


@pytest.mark.parametrize(("before", "urn", "n"), [(95, 1000, 400), (19, 300, 280),
                                                (5, 2000, 1960), (200, 5000, 2000)])
def test_p_value_is_valid_under_the_null_and_has_power_otherwise(before: int, urn: int,
                                                                  n: int) -> None:
    """A random sample of n from an urn holding K includes, after ``before`` includes were
    found: the chance that p < α while recall is below the target is at most α for every K
    (exactly, summing over the hypergeometric distribution of the includes in the sample).
    With one include in the urn (recall above the target whatever happens) it says so most of
    the time."""

    @functools.cache
    def p_at(k: int) -> float:  # the test's p at this sample size when the sample holds k
        sample = np.r_[np.ones(k, dtype=int), np.zeros(n - k, dtype=int)]
        return float(ranked_p_values(np.r_[np.ones(before, dtype=int), sample], urn - n,
                                     0.95)[n - 1])

    worst = 0.0
    for urn_includes in range(1, 4 * missed_for_failure(before, 0.95) + 8):
        ks = range(max(0, urn_includes - (urn - n)), min(n, urn_includes) + 1)
        false_claim = sum(hypergeom.pmf(k, urn, urn_includes, n) for k in ks
                          if (before + k) / (before + urn_includes) < 0.95 and p_at(k) < ALPHA)
        worst = max(worst, false_claim)
    assert worst <= ALPHA
    if before == 95:  # not vacuous: here the test errs close to α, and never above it
        assert worst > 0.8 * ALPHA
    power = hypergeom.pmf(0, urn, 1, n) * (p_at(0) < ALPHA) + \
        hypergeom.pmf(1, urn, 1, n) * (p_at(1) < ALPHA)
    assert power > 0.5


def _screen_in_order(session: Session, *, place: int | None = None) -> User:
    """400 records that arrived a month ago; a curator screens 320 of them in order, opened
    from queue place ``place``: 20 includes first, then 300 excludes."""
    from screening.web.decisions import record_decision

    t0 = utcnow() - timedelta(days=30)
    user = User(email="curator@example.org", role="curator")
    session.add(user)
    for pmid in range(1, 401):
        session.add(Record(pmid=pmid, title=f"record {pmid}", first_seen_at=t0))
    session.commit()
    session.refresh(user)
    for pmid in range(1, 321):
        record_decision(session, user=user, pmid=pmid, rank_shown=place,
                        decision="include" if pmid <= 20 else "exclude")
    session.commit()
    return user


def test_prioritised_order_test_on_the_database(ctx) -> None:  # type: ignore[no-untyped-def]
    from screening.web.decisions import record_decision

    with ctx.sessions() as session:
        user = _screen_in_order(session)
        test = prioritised_order_test(session)
        assert test.unscreened == 80 and test.found == 20
        assert test.rejects and test.sample_includes == 0 and test.sample == 300
        health = screening_health(session)
        assert health["stopping_p_value"] == pytest.approx(round(test.p_value, 4))
        assert health["stopping_test"].startswith("recall ≥ 95% with 95% confidence")

        # A record arrives after those decisions: none of them was drawn with it in the urn.
        session.add(Record(pmid=999, title="late arrival", first_seen_at=utcnow()))
        session.commit()
        late = prioritised_order_test(session)
        assert late.sample == 0 and not late.rejects and late.unscreened == 81
        # Screening it opens the window again (the newest unscreened record is old).
        record_decision(session, user=user, pmid=999, decision="exclude")
        session.commit()
        again = prioritised_order_test(session)
        assert again.rejects and again.sample == 301
        # An include found late in the order is evidence of more: p rises.
        record_decision(session, user=user, pmid=321, decision="include")
        session.commit()
        assert prioritised_order_test(session).p_value > again.p_value


def test_the_previous_versions_reports_take_no_part_in_the_stopping_test(
        ctx) -> None:  # type: ignore[no-untyped-def]
    """The seed evidence's reports stored as records were never screened here: neither the
    one left undecided (not unscreened) nor the one a curator included (not a late include of
    the screened order) counts, as the PRISMA flow leaves them out of every count."""
    from previous_reports import ORDINARY, store_previous_reports

    with ctx.sessions() as session:
        user = _screen_in_order(session)
        store_previous_reports(session, curator=user)
        test = prioritised_order_test(session)
        health = screening_health(session)
    # 80 of the first 400 + the 12 ordinary records + the new trial's report
    assert test.unscreened == 80 + len(ORDINARY) + 1 and test.found == 20
    assert test.sample == 300 and test.sample_includes == 0
    assert (health["records"], health["screened"], health["includes_found"]) == (
        400 + len(ORDINARY) + 1, 320, 20)
    assert health["records_remaining"] == 80 + len(ORDINARY) + 1
    assert health["flagged_remaining"] == 5 + 1  # the previous reports are flagged too


def test_the_test_keeps_its_promise_on_a_real_review(screening_dir: Path) -> None:
    """mmlr's learner screens a real labelled review (Cohen 2006, antihistamines); the first
    time the test rejects, recall is at least the target, and it rejects before the end."""
    data = load_dataset(screening_dir / "cohen2006_Antihistamines.csv.gz")
    priors = choose_priors(data, 0)
    order = run_active_learning(data, priors, ScreeningConfig())
    sequence = screening_sequence(len(data.labels), priors, order)
    y = data.labels[sequence].astype(int)
    assert sorted(sequence) == list(range(len(y))) and not y[len(order) + 2:].any()
    stop = next(t for t in range(3, len(y) + 1)
                if ranked_p_value(y[:t], len(y) - t, start=2).rejects)
    assert stop < len(y)
    assert y[:stop].sum() / y.sum() >= 0.95
    # first_stop is that loop; `mmlr simulate --stop-recall` reports the same point, its
    # count after the priors like n_95, its recall of every include as the test claims it
    assert first_stop(y, start=2) == stop
    result = simulate(screening_dir / "cohen2006_Antihistamines.csv.gz", seed=0,
                      stop_recall=0.95)
    assert result.stop == StopPoint(0.95, stop - 2, float(y[:stop].sum() / y.sum()), True)
    assert "(target met)" in result.describe()


def test_first_stop_is_none_when_the_test_never_allows_stopping() -> None:
    # an include as the last record: nothing before it can show recall >= 95%
    y = np.r_[1, 0, np.zeros(3, dtype=int), 1]
    assert first_stop(y, start=2) is None
    # at 50% one more missed include would need two: one unscreened record cannot hold them
    assert first_stop(y, start=2, target_recall=0.5) == 5
    assert "never allowed stopping" in StopPoint(0.95, 4, 1.0, False).describe(4)
    # a long run of excludes after every include: it stops inside the run, not at its end
    y = np.r_[np.ones(20, dtype=int), np.zeros(400, dtype=int)]
    t = first_stop(y)
    assert t is not None and 20 < t < len(y)
    assert ranked_p_value(y[:t], len(y) - t).rejects
    assert not ranked_p_value(y[:t - 1], len(y) - t + 1).rejects


@pytest.mark.parametrize(("target", "shown"), [
    (0.95, "95%"), (0.99, "99%"), (0.995, "99.5%"), (0.975, "97.5%"), (0.9, "90%"),
    (0.9999999999, "99.99999999%")])
def test_a_recall_target_is_printed_with_its_own_digits(ctx, target: float,  # type: ignore[no-untyped-def]
                                                        shown: str) -> None:
    """A target printed to the whole percent read "recall ≥ 100% with 95% confidence" for
    MMLR_STOPPING_RECALL=0.995 (a claim the test never made) and "98%" for 0.975."""
    from screening.web.decisions import record_decision

    assert recall_text(target) == shown
    with ctx.sessions() as session:
        _screen_in_order(session)
        for pmid in range(321, 331):  # audit records, screened: the audit test has a verdict
            record = session.get(Record, pmid)
            assert record is not None
            record.audit_sample = True
            session.add(record)
        session.commit()
        user = session.exec(select(User)).one()
        for pmid in range(321, 331):
            record_decision(session, user=user, pmid=pmid, decision="exclude")
        session.commit()
        health = screening_health(session, target_recall=target)
    assert f"recall ≥ {shown} " in health["stopping_test"]
    assert f"recall ≥ {shown} " in health["audit_test"]
    assert f"({shown} target)" in StopPoint(target, 4, 1.0, True).describe(4)
    assert f"({shown} target)" in StopPoint(target, 4, 1.0, False).describe(4)


@pytest.mark.parametrize(("place", "caution"), [
    (1, None),
    (None, "300 of the last 300 records screened were not opened from the queue"),
    (400, "the last 300 records screened were opened at median queue place 400"),
])
def test_the_health_says_when_the_sample_was_not_taken_in_queue_order(
        ctx, place: int | None, caution: str | None) -> None:  # type: ignore[no-untyped-def]
    """The test assumes the records screened last were the model's likeliest: the queue
    place each was opened from (kept with every decision) shows whether that holds."""
    with ctx.sessions() as session:
        _screen_in_order(session, place=place)
        text = screening_health(session)["stopping_test"]
    assert text.startswith("recall ≥ 95% with 95% confidence")  # the verdict is the same
    if caution is None:
        assert "caution" not in text
    else:
        assert f"; caution: {caution}" in text


@pytest.mark.parametrize("value", ["1", "0.3", "ninety"])
def test_a_stopping_recall_outside_its_range_is_refused(value: str) -> None:
    from store.errors import ConfigError
    from store.settings import load_settings

    with pytest.raises(ConfigError, match="MMLR_STOPPING_RECALL"):
        load_settings(stopping_recall=value)


def test_the_stopping_recall_setting_reaches_the_banner_and_the_digest(
        ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from reports.digest import build_digest
    from screening.web.app import create_app
    from screening.web.auth import issue_api_token

    settings = ctx.settings.model_copy(update={"stopping_recall": 0.99})
    with ctx.sessions() as session:
        session.add(Record(pmid=1, title="one record"))
        user = User(email="viewer@example.org", role="viewer")
        session.add(user)
        session.commit()
        session.refresh(user)
        token = issue_api_token(session, user, actor="test", days=90)
        session.commit()
    app = create_app(settings)
    try:
        body = TestClient(app).get("/api/screening/health",
                                   headers={"Authorization": f"Bearer {token}"}).json()
        assert body["stopping_test"] == "cannot yet claim recall ≥ 99%: no record has been " \
            "screened yet"
        digest = build_digest(app.state.ctx, health=screening_health)
        assert "cannot yet claim recall ≥ 99%" in digest.text
    finally:
        app.state.ctx.dispose()
