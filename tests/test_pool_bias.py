"""Risk of bias in pooling: each input carries its RoB 2 judgment, the weight at each
judgment, the sensitivity analyses without the results at risk, a new snapshot when a judgment
changes, and the forest plot's RoB column."""

from __future__ import annotations

from datetime import date

import pytest

from reports.forest import render_forest
from reports.meta import meta_analysis
from reports.pool import pool_all
from reports.selection import latest_results
from store.bias import DOMAINS, add_assessment, validate_assessment
from store.models import Trial, User
from tests.test_pool import add_estimate, add_trial

KEY = "thalidomide/PFS/post_asct"


def assess(session, trial: Trial, worst: str, *, endpoint: str = "PFS") -> None:
    user = session.get(User, 1)
    if user is None:
        user = User(email="assessor@example.org", role="curator")
        session.add(user)
        session.flush()
    domains = {key: {"judgment": "low", "support": ""} for key in DOMAINS}
    domains["missing_data"]["judgment"] = worst
    add_assessment(session, trial=trial, user=user,
                   assessment=validate_assessment(endpoint=endpoint, domains=domains))


@pytest.fixture
def trials(ctx):
    """Four thalidomide post-ASCT PFS trials: low, some concerns, high, not assessed."""
    with ctx.sessions() as s:
        out = {}
        for i, (name, hr, lo, hi, rob) in enumerate([
            ("Low", "0.60", "0.45", "0.80", "low"),
            ("Some", "0.72", "0.55", "0.94", "some_concerns"),
            ("High", "0.40", "0.28", "0.57", "high"),
            ("Unassessed", "0.85", "0.66", "1.10", None),
        ]):
            trial = add_trial(s, name)
            add_estimate(s, trial, hr, lo, hi, cut=date(2008 + i, 1, 1))
            if rob:
                assess(s, trial, rob)
            out[name] = trial.id
        s.commit()
    return out


def _snapshot(ctx):
    with ctx.sessions() as s:
        return {p.analysis_key: p for p in latest_results(s)}[KEY]


def test_inputs_carry_the_judgment_and_the_weights_add_up(ctx, trials) -> None:
    pool_all(ctx)
    snap = _snapshot(ctx)
    assert {r["trial"]: r["risk_of_bias"] for r in snap.inputs} == {
        "Low": "low", "Some": "some_concerns", "High": "high", "Unassessed": None}
    view = snap.result["risk_of_bias"]
    weights = {r["trial"]: r["weight"] for r in snap.inputs}
    assert view["weight_percent"] == pytest.approx({
        "low": weights["Low"], "some_concerns": weights["Some"], "high": weights["High"],
        "not_assessed": weights["Unassessed"]})
    assert sum(view["weight_percent"].values()) == pytest.approx(100)
    assert view["count"] == {"low": 1, "some_concerns": 1, "high": 1, "not_assessed": 1}
    assert view["assessed"] == 3


def test_sensitivity_analyses_pool_the_subsets(ctx, trials) -> None:
    pool_all(ctx)
    snap = _snapshot(ctx)
    rows = {r["trial"]: r for r in snap.inputs}
    by_name = {e["name"]: e for e in snap.result["risk_of_bias"]["sensitivity"]}
    low = by_name["low_only"]
    assert low["trials"] == ["Low"] and low["k"] == 1
    assert set(low["left_out"]) == {"Some", "High", "Unassessed"}
    ref = meta_analysis([rows["Low"]["yi"]], [rows["Low"]["sei"]], method="REML", ci="hksj")
    assert low["estimate"] == pytest.approx(ref.estimate) and low["se"] == pytest.approx(ref.se)
    without_high = by_name["without_high"]
    assert without_high["left_out"] == ["High"] and without_high["k"] == 3
    keep = [rows[n] for n in ("Low", "Some", "Unassessed")]
    ref = meta_analysis([r["yi"] for r in keep], [r["sei"] for r in keep], method="REML",
                        ci="hksj")
    for field in ("estimate", "ci_low", "ci_high", "tau2", "i2"):
        assert without_high[field] == pytest.approx(getattr(ref, field), rel=1e-9, abs=1e-12)
    # Leaving the strongest (high-risk) result out moves the estimate towards 1.
    assert without_high["hr"] > snap.result["hr"]
    assert not low["same_as_primary"] and not without_high["same_as_primary"]


def test_nothing_at_risk_is_not_pooled_twice(ctx) -> None:
    with ctx.sessions() as s:
        for i, name in enumerate(("A", "B")):
            trial = add_trial(s, name)
            add_estimate(s, trial, "0.7", "0.5", "0.98", cut=date(2010 + i, 1, 1))
            assess(s, trial, "low")
        s.commit()
    pool_all(ctx)
    by_name = {e["name"]: e for e in _snapshot(ctx).result["risk_of_bias"]["sensitivity"]}
    for entry in by_name.values():
        assert entry["same_as_primary"] and entry["left_out"] == [] and "estimate" not in entry


def test_an_assessment_writes_a_new_snapshot_and_is_per_endpoint(ctx, trials) -> None:
    pool_all(ctx)
    assert pool_all(ctx).changed == []
    with ctx.sessions() as s:
        assess(s, s.get(Trial, trials["Unassessed"]), "low", endpoint="OS")  # another endpoint
        s.commit()
    assert pool_all(ctx).changed == []
    with ctx.sessions() as s:
        assess(s, s.get(Trial, trials["Unassessed"]), "high")
        s.commit()
    changed = {o.analysis.key for o in pool_all(ctx).changed}
    assert KEY in changed
    snap = _snapshot(ctx)
    assert {r["trial"]: r["risk_of_bias"] for r in snap.inputs}["Unassessed"] == "high"
    assert snap.result["risk_of_bias"]["count"]["high"] == 2


def test_pool_json_has_the_view(ctx, trials) -> None:
    doc = pool_all(ctx).to_json()
    entry = next(a for a in doc["analyses"] if a["name"] == KEY)
    assert {s["trial"]: s["risk_of_bias"] for s in entry["studies"]}["High"] == "high"
    assert entry["risk_of_bias"]["count"]["not_assessed"] == 1


def test_forest_plot_shows_a_rob_column_once_assessed(ctx, trials) -> None:
    pool_all(ctx)
    svg = render_forest(_snapshot(ctx), fmt="svg").decode()
    assert "RoB" in svg and "Risk of bias (RoB 2, overall)" in svg


def test_forest_plot_has_no_rob_column_when_nothing_is_assessed(ctx) -> None:
    with ctx.sessions() as s:
        trial = add_trial(s, "Alone")
        add_estimate(s, trial, "0.7", "0.5", "0.98", cut=date(2010, 1, 1))
        s.commit()
    pool_all(ctx)
    svg = render_forest(_snapshot(ctx), fmt="svg").decode()
    assert "Risk of bias" not in svg


def test_assessors_who_disagree_are_carried_into_the_inputs(ctx, trials) -> None:
    with ctx.sessions() as s:
        other = User(email="second@example.org", role="curator")
        s.add(other)
        s.flush()
        domains = {key: {"judgment": "high", "support": ""} for key in DOMAINS}
        add_assessment(s, trial=s.get(Trial, trials["Low"]), user=other,
                       assessment=validate_assessment(endpoint="PFS", domains=domains))
        s.commit()
    pool_all(ctx)
    rows = {r["trial"]: r for r in _snapshot(ctx).inputs}
    # The newest judgment is pooled; that two people disagree on it is carried along.
    assert rows["Low"]["risk_of_bias"] == "high" and rows["Low"]["risk_of_bias_disputed"]
    assert not rows["Some"]["risk_of_bias_disputed"]
    rob = next(d for d in _snapshot(ctx).result["certainty"]["domains"]
               if d["domain"] == "risk_of_bias")
    assert "the assessors disagree on results carrying" in rob["reason"]

