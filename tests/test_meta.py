"""Estimators on hand-computable inputs, the edge cases and the input errors.
(Agreement with metafor on hundreds of random inputs: test_meta_metafor.py.)"""

from __future__ import annotations

import math

import pytest
from scipy import stats

from reports.meta import meta_analysis, subgroup_test, subgroup_test_undefined
from store.errors import PoolingError


def test_fixed_effect_by_hand() -> None:
    r = meta_analysis([0.0, 1.0], [1.0, 1.0], method="FE", ci="wald")
    assert r.estimate == pytest.approx(0.5)
    assert r.se == pytest.approx(math.sqrt(0.5))
    assert r.ci_low == pytest.approx(0.5 - 1.959964 * math.sqrt(0.5), abs=1e-6)
    assert r.q == pytest.approx(0.5) and r.q_df == 1
    assert r.q_p == pytest.approx(stats.chi2.sf(0.5, 1))
    assert r.i2 == 0.0 and r.tau2 == 0.0
    assert r.weights == pytest.approx([50.0, 50.0])
    assert math.isnan(r.pi_low)  # metafor gives no PI for FE


@pytest.mark.parametrize("method", ["DL", "REML", "PM"])
def test_random_effects_equal_variances_by_hand(method: str) -> None:
    # y = (0, 2), v = (1, 1): Q = 2; DL = (Q - 1)/(2 - 1) = 1; REML = PM = s² - v = 1.
    r = meta_analysis([0.0, 2.0], [1.0, 1.0], method=method, ci="wald")
    assert r.tau2 == pytest.approx(1.0, abs=1e-10)
    assert r.i2 == pytest.approx(50.0)
    assert r.h2 == pytest.approx(2.0)
    assert r.se == pytest.approx(1.0)
    assert r.pi_high - r.estimate == pytest.approx(1.959964 * math.sqrt(2.0), abs=1e-6)


def test_hksj_uses_t_with_k_minus_1_df() -> None:
    yi, sei = [-0.5, -0.1, -0.3, 0.1], [0.1, 0.2, 0.15, 0.25]
    wald = meta_analysis(yi, sei, method="DL", ci="wald")
    hk = meta_analysis(yi, sei, method="DL", ci="hksj")
    assert hk.df == 3 and wald.df is None
    assert hk.estimate == pytest.approx(wald.estimate)
    assert hk.se == pytest.approx(wald.se * math.sqrt(hk.s2w))
    assert hk.ci_high - hk.estimate == pytest.approx(stats.t.ppf(0.975, 3) * hk.se)
    assert hk.pi_high - hk.estimate == pytest.approx(
        stats.t.ppf(0.975, 3) * math.sqrt(hk.se**2 + hk.tau2))


def test_k1() -> None:
    r = meta_analysis([-0.35], [0.12], labels=["only"])
    assert (r.k, r.tau2, r.q, r.q_p, r.i2, r.h2) == (1, 0.0, 0.0, 1.0, 0.0, 1.0)
    assert r.ci == "wald" and r.requested_ci == "hksj" and r.notes
    assert r.ci_low == pytest.approx(-0.35 - 1.959964 * 0.12, abs=1e-6)
    assert r.tau2_ci is None and r.leave_one_out() == []


def test_k2_is_wide_under_hksj() -> None:
    r = meta_analysis([-0.4, -0.35], [0.15, 0.2], ci="hksj-adhoc")
    assert r.df == 1
    assert r.ci_high - r.ci_low > 2 * 12.7 * 0.1  # t(1) = 12.7


def test_k2_says_its_heterogeneity_rests_on_two_trials() -> None:
    """Two trials give τ² and a prediction interval (metafor's numbers, unchanged) with a
    note saying what they rest on; three trials, and a fixed-effect fit, have no such note."""
    two = meta_analysis([-0.4, -0.1], [0.15, 0.2], method="REML", ci="hksj")
    assert math.isfinite(two.pi_low) and two.pi_high > two.ci_high
    assert any(n.startswith("k = 2: τ² and the prediction interval") for n in two.notes)
    three = meta_analysis([-0.4, -0.1, -0.3], [0.15, 0.2, 0.1], method="REML", ci="hksj")
    fixed = meta_analysis([-0.4, -0.1], [0.15, 0.2], method="FE", ci="wald")
    assert not any(n.startswith("k = 2") for n in three.notes + fixed.notes)


def test_tau2_zero_at_the_boundary() -> None:
    yi, sei = [-0.30, -0.31, -0.29, -0.305], [0.2, 0.25, 0.3, 0.15]
    for method in ("REML", "DL", "PM"):
        r = meta_analysis(yi, sei, method=method)
        assert r.tau2 == 0.0 and r.i2 == 0.0 and r.h2 == 1.0
        assert r.tau2_ci == (0.0, 0.0)


def test_a_multiplier_just_below_one_is_not_written_as_one() -> None:
    # Two studies at ±d with equal SEs under a common effect: s²w = 2d²/s² = 0.9997, which
    # "{:.3g}" wrote as "s²w = 1 < 1".
    d = 0.1 * math.sqrt(0.9997 / 2)
    fe = meta_analysis([-d, d], [0.1, 0.1], method="FE", ci="hksj")
    assert [n for n in fe.notes if "s²w" in n] == [
        "HKSJ multiplier s²w = 0.9997 < 1 narrows the CI below Wald's; hksj-adhoc would not"]
    wider = meta_analysis([-0.05, 0.05], [0.1, 0.1], method="FE", ci="hksj")  # s²w = 0.5
    assert any(n.startswith("HKSJ multiplier s²w = 0.5 < 1") for n in wider.notes)


@pytest.mark.parametrize(("s2w", "shown"), [
    (0.9999995, "0.9999995"), (0.99999951, "0.9999995"), (0.9996, "0.9996"), (0.9994, "0.999")])
def test_a_multiplier_a_hair_below_one_reads_below_one(s2w: float, shown: str) -> None:
    # Six decimals with the zeros stripped wrote 0.9999995 as "s²w = 1. < 1"
    d = 0.1 * math.sqrt(s2w / 2)
    fe = meta_analysis([-d, d], [0.1, 0.1], method="FE", ci="hksj")
    assert [n for n in fe.notes if "s²w" in n] == [
        f"HKSJ multiplier s²w = {shown} < 1 narrows the CI below Wald's; hksj-adhoc would not"]


def test_a_multiplier_below_one_by_rounding_error_alone_gets_no_note() -> None:
    # A,0,0.1 and B,-0.2,0.15: REML leaves s²w a rounding error below 1, and the note said
    # "s²w = 1. < 1 narrows the CI below Wald's", which it does not, to any printed digit
    r = meta_analysis([0.0, -0.2], [0.1, 0.15], method="REML", ci="hksj")
    assert 1.0 - 1e-12 < r.s2w < 1.0
    assert [n for n in r.notes if "s²w" in n] == []


def test_identical_studies() -> None:
    hk = meta_analysis([-0.3] * 3, [0.1, 0.2, 0.05], ci="hksj")
    assert hk.se == 0.0 and hk.ci_low == hk.ci_high == pytest.approx(-0.3)
    assert any("zero width" in n for n in hk.notes)
    adhoc = meta_analysis([-0.3] * 3, [0.1, 0.2, 0.05], ci="hksj-adhoc")
    assert adhoc.se > 0 and adhoc.q == pytest.approx(0.0, abs=1e-12)


def test_extreme_heterogeneity() -> None:
    r = meta_analysis([-2.0, 1.5, 0.1, -0.8, 2.2], [0.05, 0.05, 0.04, 0.06, 0.05])
    assert r.i2 > 99.0 and r.q_p < 1e-100 and r.tau2 > 1.0
    assert r.tau2_ci is not None and r.tau2_ci[0] < r.tau2 < r.tau2_ci[1]


@pytest.mark.parametrize(("yi", "sei", "match"), [
    ([0.1, 0.2], [0.1, 0.0], "study 'B'.*standard error 0.0"),
    ([0.1, 0.2], [0.1, -0.3], "study 'B'.*standard error -0.3"),
    ([0.1, float("nan")], [0.1, 0.2], "study 'B'.*log HR is nan"),
    ([0.1, 0.2], [0.1, float("inf")], "study 'B'.*standard error inf"),
    ([0.1, "x"], [0.1, 0.2], "study 'B'.*not a number"),
    ([], [], "no studies"),
    ([0.1], [0.1, 0.2], "1 effect sizes but 2"),
])
def test_bad_inputs_name_the_row(yi, sei, match) -> None:
    labels = ["A", "B"][: len(yi)] if len(yi) == len(sei) else None
    with pytest.raises(PoolingError, match=match):
        meta_analysis(yi, sei, labels=labels)


def test_row_number_when_unlabelled_and_bad_options() -> None:
    with pytest.raises(PoolingError, match="'row 2'"):
        meta_analysis([0.1, 0.2], [0.1, 0.0])
    with pytest.raises(PoolingError, match="unknown pooling method 'ML'"):
        meta_analysis([0.1], [0.1], method="ML")
    with pytest.raises(PoolingError, match="unknown CI method"):
        meta_analysis([0.1], [0.1], ci="profile")


def test_leave_one_out_and_cumulative() -> None:
    yi, sei = [-0.5, -0.1, -0.3], [0.1, 0.2, 0.15]
    r = meta_analysis(yi, sei, labels=["a", "b", "c"], method="DL", ci="wald")
    loo = dict(r.leave_one_out())
    assert set(loo) == {"a", "b", "c"}
    assert loo["a"].estimate == pytest.approx(
        meta_analysis(yi[1:], sei[1:], method="DL", ci="wald").estimate)
    cum = r.cumulative(["2012", "2008", "2010"])
    assert [name for name, _ in cum] == ["b", "c", "a"]
    assert [res.k for _, res in cum] == [1, 2, 3]
    assert cum[-1][1].estimate == pytest.approx(r.estimate)
    with pytest.raises(PoolingError, match="sort keys"):
        r.cumulative(["2012"])


def test_subgroup_test_by_hand() -> None:
    a = meta_analysis([0.0], [1.0])
    b = meta_analysis([1.0], [1.0])
    t = subgroup_test([("a", a), ("b", b)])
    assert t is not None and t.q == pytest.approx(0.5) and t.df == 1
    assert t.p == pytest.approx(stats.chi2.sf(0.5, 1))
    assert subgroup_test([("a", a)]) is None
    zero = meta_analysis([-0.3] * 2, [0.1, 0.1], ci="hksj")
    assert subgroup_test([("a", a), ("z", zero)]) is None  # undefined, and said why:
    assert "subgroup 'z' has a zero standard error" in str(
        subgroup_test_undefined([("a", a), ("z", zero)]))
    assert subgroup_test_undefined([("a", a), ("b", b)]) is None


def test_to_json_has_no_nan() -> None:
    doc = meta_analysis([0.1, 0.2], [0.1, 0.2], method="FE").to_json()
    assert doc["pi_low"] is None and doc["name"] == "all"
    assert doc["hr"] == pytest.approx(math.exp(doc["estimate"]))
