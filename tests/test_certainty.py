"""The suggested GRADE certainty (reports.certainty): each domain's rule at its edges, the
level arithmetic, the provisional flag, and its place in pool_all's snapshots."""

from __future__ import annotations

from datetime import date

import pytest

from reports.certainty import suggest_certainty
from reports.pool import pool_all
from reports.selection import latest_results
from tests.test_pool import add_estimate, add_trial
from tests.test_pool_bias import assess


def rows(*specs: tuple[float, str | None, bool]) -> list[dict]:
    """(weight %, RoB judgment, EFS/TTP) per pooled input."""
    return [{"weight": w, "risk_of_bias": rob, "efs_ttp": surrogate}
            for w, rob, surrogate in specs]


FIRM = {"status": "firm_evidence", "fraction": 0.6}
ENOUGH = {"status": "required_information_reached", "fraction": 1.3}
SHORT = {"status": "conventional_only", "fraction": 0.4}
LOW_ROB = rows((50, "low", False), (50, "low", False))


def domain(result: dict, name: str) -> dict:
    return next(d for d in result["domains"] if d["domain"] == name)


def suggest(**kw) -> dict:
    base = {"k": 2, "hr_ci_low": 0.5, "hr_ci_high": 0.8, "i2": 0.0, "q_p": 0.9,
            "rows": LOW_ROB, "monitoring": FIRM}
    return suggest_certainty(**{**base, **kw})


def test_clean_evidence_is_high() -> None:
    result = suggest()
    assert result["level"] == "high" and result["downgrades"] == 0
    assert not result["provisional"]
    assert result["text"].startswith("Suggested certainty: high (no domain rated down)")
    assert result["text"].endswith("not a GRADE judgment.")


@pytest.mark.parametrize("specs, down", [
    (((50, "high", False), (50, "low", False)), 2),
    (((49, "high", False), (51, "low", False)), 0),
    (((30, "high", False), (20, "some_concerns", False), (50, "low", False)), 1),
    (((40, "some_concerns", False), (60, "low", False)), 0),
])
def test_risk_of_bias_by_weight(specs, down: int) -> None:
    assert domain(suggest(rows=rows(*specs)), "risk_of_bias")["downgrade"] == down


def test_unassessed_weight_makes_it_provisional() -> None:
    result = suggest(rows=rows((60, None, False), (40, "low", False)))
    rob = domain(result, "risk_of_bias")
    assert rob["provisional"] and rob["reason"] == (
        "results at low risk carry 40% of the weight; 60% of the weight not assessed yet, "
        "which rates nothing down until it is assessed")
    assert result["provisional"]
    assert "provisional: most of the weight has no agreed risk-of-bias assessment" in (
        result["text"])
    assert not suggest(rows=rows((40, None, False), (60, "low", False)))["provisional"]


def test_disputed_judgments_count_as_unsettled() -> None:
    specs = [{"weight": 30, "risk_of_bias": None, "efs_ttp": False},
             {"weight": 25, "risk_of_bias": "low", "efs_ttp": False,
              "risk_of_bias_disputed": True},
             {"weight": 45, "risk_of_bias": "low", "efs_ttp": False}]
    rob = domain(suggest(rows=specs), "risk_of_bias")
    assert "the assessors disagree on results carrying 25%" in rob["reason"]
    assert rob["provisional"]  # 30% unassessed + 25% disputed
    specs[1]["risk_of_bias_disputed"] = False
    assert not domain(suggest(rows=specs), "risk_of_bias")["provisional"]


@pytest.mark.parametrize("i2, q_p, down, shown", [
    (49.6, 0.01, 0, "I² = 49.6%, Q p = 0.01"),      # not "50%": 50% would be rated down
    (50.0, 0.0996, 1, "I² = 50%, Q p = 0.0996"),    # not "0.10": p < 0.10 is rated down
    (49.96, 0.1004, 0, "I² = 49.96%, Q p = 0.10"),  # 0.10 is not < 0.10: no contradiction
    (72.4, 0.03, 1, "I² = 72%, Q p = 0.03"),
    (85.0, 0.0004, 1, "I² = 85%, Q p < 0.001"),  # not "0.00"
    (85.0, 0.004, 1, "I² = 85%, Q p = 0.004"),
])
def test_inconsistency_reason_never_contradicts_its_rule(i2: float, q_p: float, down: int,
                                                        shown: str) -> None:
    d = domain(suggest(k=3, i2=i2, q_p=q_p), "inconsistency")
    assert (d["downgrade"], d["reason"]) == (down, shown)


def test_a_pooled_ci_limit_is_never_rounded_across_1() -> None:
    """A pooled CI is judged on its computed limits, and its reason writes each limit with the
    digits that keep it on its side: 0.997 printed "1.00" would read as a CI touching 1 while
    it is said to exclude it (rounded to two decimals, 0.62–0.997 was rated down as "0.62–1.00
    includes no effect" for a difference in the third decimal)."""
    d = domain(suggest(hr_ci_low=0.62, hr_ci_high=0.997, monitoring=FIRM), "imprecision")
    assert d["downgrade"] == 0 and d["reason"].startswith("95% CI 0.62–0.997 excludes HR 1")
    d = domain(suggest(hr_ci_low=0.752, hr_ci_high=1.30), "imprecision")
    assert d["downgrade"] == 1 and d["reason"].startswith("95% CI 0.752–1.30 includes no")
    d = domain(suggest(hr_ci_low=1.0004, hr_ci_high=1.5), "imprecision")
    assert d["reason"].startswith("95% CI 1.0004–1.50 excludes HR 1")
    d = domain(suggest(hr_ci_low=0.70, hr_ci_high=1.2496), "imprecision")
    assert d["downgrade"] == 1 and d["reason"].startswith("95% CI 0.70–1.2496 includes no")
    d = domain(suggest(hr_ci_low=0.62, hr_ci_high=0.9949, monitoring=FIRM), "imprecision")
    assert (d["downgrade"], d["reason"]) == (
        0, "95% CI 0.62–0.99 excludes HR 1 (no effect) and the Z-curve crossed its monitoring "
           "boundary")
    # A limit a hair from 1 is cut towards its side, never written with a float's 16 digits.
    d = domain(suggest(hr_ci_low=0.62, hr_ci_high=0.9999999982398722, monitoring=FIRM),
               "imprecision")
    assert d["reason"].startswith("95% CI 0.62–0.9999999 excludes HR 1"), d
    plain = domain(suggest(hr_ci_low=0.61, hr_ci_high=0.79, monitoring=FIRM), "imprecision")
    assert plain["reason"].startswith("95% CI 0.61–0.79 excludes")


def test_one_trials_printed_ci_decides_its_imprecision() -> None:
    """One trial's printed CI is its data: a printed 0.64–1.00 includes HR 1 whatever the
    CI rebuilt from its SE gives."""
    d = domain(suggest(k=1, hr_ci_low=0.64, hr_ci_high=0.9999999982, monitoring=FIRM,
                       shown_ci=("0.64", "1.00")), "imprecision")
    assert (d["downgrade"], d["reason"]) == (1, "95% CI 0.64–1.00 includes no effect")


def test_beside_never_prints_all_of_a_floats_digits() -> None:
    """I² a hair below 50 kept 16 digits ("49.999999999999"): cut towards its side at
    five more decimals."""
    from reports.words import rounded_beside
    assert rounded_beside(49.9999999999, 50, 0) == "49.99999"
    assert rounded_beside(0.09999999999, 0.10, 2) == "0.0999999"
    assert rounded_beside(49.6, 50, 0) == "49.6" and rounded_beside(50.0, 50, 0) == "50"
    d = domain(suggest(k=3, i2=49.9999999999, q_p=0.01), "inconsistency")
    assert (d["downgrade"], d["reason"]) == (0, "I² = 49.99999%, Q p = 0.01")


@pytest.mark.parametrize("k, i2, q_p, down", [
    (3, 50.0, 0.09, 1), (3, 49.9, 0.01, 0), (3, 80.0, 0.2, 0), (1, None, None, 0)])
def test_inconsistency(k: int, i2, q_p, down: int) -> None:
    d = domain(suggest(k=k, i2=i2, q_p=q_p), "inconsistency")
    assert d["downgrade"] == down
    if k == 1:
        assert d["reason"] == "not applicable: one trial"


@pytest.mark.parametrize("strategy_weight, down", [(50, 1), (100, 1), (49, 0), (0, 0)])
def test_indirectness_rates_down_evidence_mostly_from_strategy_trials(
        strategy_weight: int, down: int) -> None:
    specs = [{"weight": strategy_weight, "risk_of_bias": "low", "is_strategy": True},
             {"weight": 100 - strategy_weight, "risk_of_bias": "low", "is_strategy": False}]
    d = domain(suggest(rows=specs), "indirectness")
    assert d["downgrade"] == down
    if strategy_weight:
        assert (f"strategy trials (induction differs too, so the contrast is not maintenance "
                f"alone) carry {strategy_weight}% of the weight") in d["reason"]
        assert d["reason"].startswith("for the panel: ") is (down == 0)
    else:
        assert "strategy" not in d["reason"]


def test_indirectness_is_shown_not_rated() -> None:
    mostly = domain(suggest(rows=rows((80, "low", True), (20, "low", False))), "indirectness")
    assert mostly["downgrade"] == 0
    assert mostly["reason"].startswith("for the panel: EFS or TTP in place of PFS carry 80%")
    none = domain(suggest(), "indirectness")
    assert none["reason"] == "population, drug and comparator are the panel's to judge"


@pytest.mark.parametrize("lo, hi, monitoring, down", [
    (0.70, 1.30, FIRM, 2),     # appreciable benefit and harm
    (0.80, 1.30, FIRM, 1),     # includes 1, not appreciable benefit
    (0.60, 1.05, FIRM, 1),     # includes 1
    (0.50, 0.80, SHORT, 1),    # excludes 1, information short of the optimal size
    (0.50, 0.80, FIRM, 0),     # ... but the boundary was crossed
    (0.50, 0.80, ENOUGH, 0),   # ... or the information is there
])
def test_imprecision(lo: float, hi: float, monitoring: dict, down: int) -> None:
    d = domain(suggest(hr_ci_low=lo, hr_ci_high=hi, monitoring=monitoring), "imprecision")
    assert d["downgrade"] == down, d["reason"]


def test_a_crossing_the_curve_has_fallen_back_from_is_not_firm() -> None:
    """A large null trial pulls the Z-curve back inside its boundary after an early crossing
    (status firm_evidence, the sentence says "back inside"): short of the optimal information
    size, imprecision is rated down again, as without the crossing."""
    from reports.sequential import MonitoringPlan, monitor

    def steps(studies: list[tuple[float, float]]) -> list[dict]:
        return [{"date": f"{2005 + i}-12-31", "date_label": str(2005 + i), "k": i + 1,
                 "studies": [{"trial": f"T{j}", "estimate_id": j, "yi": y, "sei": s}
                             for j, (y, s) in enumerate(studies[:i + 1])]}
                for i in range(len(studies))]

    back = monitor(steps([(-1.0, 0.2), (0.05, 0.12)]), MonitoringPlan(), method="FE")
    assert back is not None and back["status"] == "firm_evidence"
    assert "back inside" in back["text"] and back["fraction"] < 1
    d = domain(suggest(hr_ci_low=0.65, hr_ci_high=0.97, monitoring=back), "imprecision")
    assert d["downgrade"] == 1, d["reason"]
    assert "back inside" in d["reason"]
    # still beyond the boundary: the crossing stands in for the information size
    still = monitor(steps([(-1.0, 0.2), (-0.6, 0.12)]), MonitoringPlan(), method="FE")
    assert still is not None and still["status"] == "firm_evidence"
    assert "back inside" not in still["text"] and still["fraction"] < 1
    kept = domain(suggest(hr_ci_low=0.45, hr_ci_high=0.75, monitoring=still), "imprecision")
    assert kept["downgrade"] == 0, kept["reason"]


def test_imprecision_without_a_plan_is_provisional() -> None:
    result = suggest(monitoring=None)
    assert domain(result, "imprecision")["provisional"] and result["provisional"]


def test_two_trials_rated_down_on_a_hartung_knapp_interval_are_told_why_it_is_wide() -> None:
    # GIMEMA 0.47 and CALGB 0.57, I² 0%: HKSJ with k = 2 gives 0.18–1.64 (t, 1 df), rated
    # down twice; the reason must say the interval is wide by construction.
    wide = "with two trials the Hartung–Knapp interval uses t with 1 degree of freedom"
    rated = domain(suggest(hr_ci_low=0.18, hr_ci_high=1.64, ci_used="hksj"), "imprecision")
    assert rated["downgrade"] == 2 and wide in rated["reason"]
    assert wide in domain(suggest(hr_ci_low=0.18, hr_ci_high=1.64, ci_used="hksj-adhoc"),
                          "imprecision")["reason"]
    # not for a Wald interval, three trials, or an interval that rates nothing down
    for kw in ({"ci_used": "wald"}, {"ci_used": "hksj", "k": 3}, {"ci_used": None}):
        assert wide not in domain(suggest(hr_ci_low=0.18, hr_ci_high=1.64, **kw),
                                  "imprecision")["reason"]
    assert wide not in domain(suggest(ci_used="hksj"), "imprecision")["reason"]
    # rated down for the information size, not the width: nothing to say about the width
    short = domain(suggest(ci_used="hksj", monitoring=SHORT), "imprecision")
    assert short["downgrade"] == 1 and wide not in short["reason"]


def test_publication_bias_is_never_rated_by_rule() -> None:
    assert "fewer than 10 trials" in domain(suggest(k=4), "publication_bias")["reason"]
    assert "funnel plot" in domain(suggest(k=12), "publication_bias")["reason"]
    assert domain(suggest(k=12), "publication_bias")["downgrade"] == 0


def test_levels_add_up_and_stop_at_very_low() -> None:
    result = suggest(rows=rows((60, "high", True), (40, "low", False)), i2=80.0, q_p=0.01,
                     hr_ci_low=0.6, hr_ci_high=1.4, k=3)
    assert result["downgrades"] == 2 + 1 + 2
    assert result["level"] == "very low"
    assert "(−2 risk of bias, −1 inconsistency, −2 imprecision)" in result["text"]
    assert suggest(hr_ci_low=0.6, hr_ci_high=1.05)["level"] == "moderate"
    assert suggest(hr_ci_low=0.7, hr_ci_high=1.3)["level"] == "low"


def test_pool_all_stores_the_suggestion(ctx) -> None:
    with ctx.sessions() as s:
        for i, (hr, lo, hi) in enumerate([("0.60", "0.45", "0.80"), ("0.95", "0.70", "1.29")]):
            trial = add_trial(s, f"Trial {i}")
            add_estimate(s, trial, hr, lo, hi, cut=date(2008 + i, 1, 1))
            assess(s, trial, "high")
        s.commit()
    doc = pool_all(ctx).to_json()
    entry = next(a for a in doc["analyses"] if a["name"] == "thalidomide/PFS/post_asct")
    certainty = entry["certainty"]
    assert domain(certainty, "risk_of_bias")["downgrade"] == 2
    assert certainty["level"] in ("low", "very low")
    with ctx.sessions() as s:
        snap = {p.analysis_key: p for p in latest_results(s)}["thalidomide/PFS/post_asct"]
    assert snap.result["certainty"] == certainty


def test_a_latest_step_without_new_information_is_read_against_the_boundary_in_force() -> None:
    """A later cut of a trial with fewer events adds no information, so the latest step is no
    new look and has no boundary of its own. Its Z (beyond 1.96 but inside the last look's
    boundary) is back inside the boundary in force: the sentence says so and imprecision is
    rated down, as when the curve falls back at a new look (it was read against 1.96, kept
    the crossing and did not rate down)."""
    from reports.sequential import MonitoringPlan, monitor

    a = {"trial": "A", "estimate_id": 1, "yi": -0.45, "sei": 0.13}
    b = {"trial": "B", "estimate_id": 2, "yi": -0.35, "sei": 0.14}
    b_later_cut = {"trial": "B", "estimate_id": 3, "yi": 0.15, "sei": 0.16}
    steps = [{"date": "2010-01-01", "date_label": "2010", "k": 1, "studies": [a]},
             {"date": "2012-01-01", "date_label": "2012", "k": 2, "studies": [a, b]},
             {"date": "2014-01-01", "date_label": "2014", "k": 2, "studies": [a, b_later_cut]}]
    view = monitor(steps, MonitoringPlan(0.8, 0.05, 0.8), method="FE")
    assert view is not None and view["status"] == "firm_evidence"
    last, previous = view["looks"][-1], view["looks"][-2]
    assert not last["new_look"] and last["boundary"] is None
    assert 1.96 < abs(last["z"]) < previous["boundary"] == view["boundary"]
    assert f"back inside the boundary (±{previous['boundary']:.2f})" in view["text"]
    d = domain(suggest(hr_ci_low=0.60, hr_ci_high=0.95, monitoring=view), "imprecision")
    assert d["downgrade"] == 1, d["reason"]
    assert "back inside" in d["reason"]
