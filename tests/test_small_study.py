"""Small-study effects (reports.small_study): the view pooling stores, its limits and errors.

The numbers themselves are checked against R metafor in tests/test_small_study_metafor.py;
these tests cover what the view says around them and how pooling and the certainty use it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.analyses import Analysis, Candidate
from reports.certainty import suggest_certainty
from reports.pool import PoolRun, compute_analysis
from reports.small_study import (
    MIN_TRIALS_FOR_TESTS,
    egger_test,
    meta_regression,
    p_text,
    small_study_effects,
    trim_and_fill,
)
from store.errors import PoolingError

#: Twelve trials whose small ones show more benefit: an asymmetric funnel.
ASYMMETRIC_SE = (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)
ASYMMETRIC_Y = tuple(-0.2 - 1.4 * s + 0.03 * (-1) ** i for i, s in enumerate(ASYMMETRIC_SE))


def test_asymmetric_funnel_is_found_and_filled() -> None:
    view = small_study_effects(ASYMMETRIC_Y, ASYMMETRIC_SE, method="REML", ci="hksj")
    assert view["available"] and view["k_sufficient"] and view["errors"] == {}
    egger = view["egger"]
    assert egger["bias"] < 0 and egger["p"] < 0.01 and egger["df"] == len(ASYMMETRIC_SE) - 2
    # The limit estimate (a trial of infinite size) shows less benefit than the small trials.
    assert egger["limit_hr"] == pytest.approx(math.exp(egger["limit"]))
    assert egger["limit_hr"] > math.exp(min(ASYMMETRIC_Y))
    fill = view["trim_fill"]
    assert fill["side"] == "right" and fill["k0"] >= 1
    assert fill["k"] == len(ASYMMETRIC_SE) + fill["k0"] and fill["ci_used"] == "hksj"
    # Filling the missing side moves the estimate towards no effect.
    primary = np.average(ASYMMETRIC_Y, weights=1 / np.square(ASYMMETRIC_SE))
    assert fill["estimate"] > primary
    assert f"Egger's test {p_text(egger['p'])} (asymmetry)" in view["summary"]
    assert "on the side of less benefit" in view["summary"]
    assert "cannot tell asymmetry from chance" not in view["summary"]


def test_mirrored_funnel_fills_the_other_side() -> None:
    y = [-v for v in ASYMMETRIC_Y]
    fill = trim_and_fill(y, ASYMMETRIC_SE, method="DL", ci="wald")
    assert fill["side"] == "left" and fill["k0"] >= 1
    assert all(f["yi"] < fill["estimate"] for f in fill["filled"])
    # A side given by the caller is used as given.
    forced = trim_and_fill(y, ASYMMETRIC_SE, method="DL", ci="wald", side="right")
    assert forced["side"] == "right"


def test_few_trials_carry_the_caveat() -> None:
    k = MIN_TRIALS_FOR_TESTS - 1
    view = small_study_effects(ASYMMETRIC_Y[:k], ASYMMETRIC_SE[:k], method="REML", ci="hksj")
    assert view["available"] and not view["k_sufficient"]
    assert view["egger"] is not None
    assert f"With {k} trials (< 10) these cannot tell asymmetry from chance" in view["summary"]


@pytest.mark.parametrize("k", [0, 1, 2])
def test_below_three_trials_there_is_no_funnel(k: int) -> None:
    view = small_study_effects([-0.3, -0.5][:k], [0.1, 0.2][:k], method="REML", ci="hksj")
    assert not view["available"] and view["egger"] is None and view["trim_fill"] is None
    assert view["reason"].startswith(f"{k} trial") and "at least 3" in view["reason"]


def test_equal_standard_errors_say_why_nothing_is_computed() -> None:
    view = small_study_effects([-0.3, -0.5, -0.1, -0.4], [0.2] * 4, method="REML", ci="hksj")
    assert view["available"] and view["egger"] is None and view["trim_fill"] is None
    error = view["errors"]["egger"]
    assert "collinear" in error and "same standard error" in error
    assert "trim_fill" in view["errors"]
    assert view["summary"].startswith("no test could be computed")


def test_errors_are_specific() -> None:
    design = np.column_stack([np.ones(3), [0.1, 0.2, 0.3]])
    with pytest.raises(PoolingError, match="unknown pooling method 'ML'"):
        meta_regression([-0.1, -0.2, -0.3], [0.1, 0.2, 0.3], design, method="ML")
    with pytest.raises(PoolingError, match="unknown CI method 'profile'"):
        meta_regression([-0.1, -0.2, -0.3], [0.1, 0.2, 0.3], design, ci="profile")
    with pytest.raises(PoolingError, match="more than 2 studies, not 2"):
        meta_regression([-0.1, -0.2], [0.1, 0.2], design[:2])
    with pytest.raises(PoolingError, match="3 effect sizes but a design with 2 rows"):
        meta_regression([-0.1, -0.2, -0.3], [0.1, 0.2, 0.3], design[:2])
    with pytest.raises(PoolingError, match=r"standard error -0\.2 must be a positive"):
        egger_test([-0.1, -0.2, -0.3], [0.1, -0.2, 0.3])
    with pytest.raises(PoolingError, match="at least 3 trials, not 2"):
        trim_and_fill([-0.1, -0.2], [0.1, 0.2])
    with pytest.raises(PoolingError, match="unknown side 'up'"):
        trim_and_fill([-0.1, -0.2, -0.3], [0.1, 0.2, 0.3], side="up")


def _candidates(n: int, setting: str = "post_asct") -> list[Candidate]:
    out = []
    for i, (y, s) in enumerate(zip(ASYMMETRIC_Y[:n], ASYMMETRIC_SE[:n], strict=True)):
        out.append(Candidate(
            estimate_id=i + 1, trial_id=i + 1, trial_name=f"Trial {i + 1}",
            drug="thalidomide", is_strategy=False, endpoint="PFS", setting=setting,
            comparison="maintenance vs control", log_hr=y, se=s, verified=True,
            report_year=2000 + i))
    return out


def test_pooling_stores_the_view_and_the_certainty_quotes_it() -> None:
    analysis = Analysis("thalidomide", "post_asct", "PFS")
    outcome = compute_analysis(analysis, _candidates(12), method="REML", ci="hksj")
    view = outcome.extras["small_study"]
    assert view["k"] == 12 and view["egger"]["p"] < 0.01 and view["trim_fill"]["k0"] >= 1
    reason = next(d["reason"] for d in outcome.extras["certainty"]["domains"]
                  if d["domain"] == "publication_bias")
    p = view["egger"]["p"]
    assert f"Egger's test {p_text(p)}, the funnel is asymmetric" in reason
    assert "trim-and-fill adds" in reason
    # Never rated down by rule, whatever the test says.
    assert all(d["downgrade"] == 0 for d in outcome.extras["certainty"]["domains"]
               if d["domain"] == "publication_bias")
    few = compute_analysis(analysis, _candidates(2), method="REML", ci="hksj")
    assert not few.extras["small_study"]["available"]


def test_certainty_without_a_funnel_view_keeps_its_old_reason() -> None:
    rows = [{"weight": 10.0, "risk_of_bias": "low"}] * 10
    domains = suggest_certainty(k=10, hr_ci_low=0.6, hr_ci_high=0.8, i2=0.0, q_p=0.9, rows=rows,
                                monitoring=None)["domains"]
    reason = next(d["reason"] for d in domains if d["domain"] == "publication_bias")
    assert reason == "for the panel: look at the funnel plot"


def test_the_code_version_covers_this_module() -> None:
    # A snapshot names the code that made it: a change to these tests' numbers must show.
    from reports import pool
    assert "small_study.py" in pool._CODE_FILES


def test_pool_table_and_json_carry_the_tests() -> None:
    analysis = Analysis("thalidomide", "post_asct", "PFS")
    run = PoolRun(method="REML", ci="hksj", code_version="test")
    run.outcomes = [compute_analysis(analysis, _candidates(12), method="REML", ci="hksj"),
                    compute_analysis(Analysis("thalidomide", "non_transplant", "PFS"),
                                     _candidates(4, "non_transplant"), method="REML",
                                     ci="hksj")]
    text = run.describe()
    p = run.outcomes[0].extras["small_study"]["egger"]["p"]
    assert f"small-study effects: Egger {p_text(p)}, trim-and-fill +" in text
    # The four-trial analysis gets its numbers with the caveat, the twelve-trial one without.
    assert text.count("(k < 10: not interpretable)") == 1
    entry = run.to_json()["analyses"][0]
    assert entry["small_study"]["k"] == 12 and entry["small_study"]["trim_fill"]["k0"] >= 1


def test_p_values_are_never_printed_as_zero() -> None:
    assert p_text(0.0004) == "p < 0.001"
    assert p_text(0.001) == "p = 0.001"
    assert p_text(0.2346) == "p = 0.235"


def test_egger_limit_beyond_a_float_is_not_estimable_but_the_test_is_reported() -> None:
    """HR 1.00 (0.89–1.13), 0.83 (0.74–0.94), 0.96 (0.85–1.08): SEs within 0.3% of each
    other put the intercept's CI at −719 to 767 on the log scale; exp() overflowed."""
    yi = [0.0, math.log(0.83), math.log(0.96)]
    sei = [(math.log(hi) - math.log(lo)) / (2 * 1.959964)
           for lo, hi in ((0.89, 1.13), (0.74, 0.94), (0.85, 1.08))]
    view = small_study_effects(yi, sei, method="REML", ci="hksj")
    assert view["errors"] == {} and view["trim_fill"]["k0"] == 0
    egger = view["egger"]
    assert egger["df"] == 1 and 0.7 < egger["p"] < 0.8
    assert egger["limit_ci_high"] > 709  # what exp() cannot represent
    assert egger["limit_hr"] is egger["limit_hr_ci_low"] is egger["limit_hr_ci_high"] is None
    assert egger["limit_note"].startswith("not estimable: the trials' standard errors span "
                                          "too narrow a range")
    assert view["summary"].startswith("Egger's test p = 0.75")
    # An ordinary funnel keeps its limit HR and has no note.
    ordinary = egger_test(ASYMMETRIC_Y, ASYMMETRIC_SE)
    assert ordinary["limit_note"] is None
    assert ordinary["limit_hr"] == pytest.approx(math.exp(ordinary["limit"]))
