"""Sequential monitoring (reports.sequential): boundaries against R rpact and a simulation, the
required information against Schoenfeld's formula, the verdicts, and its place in pool_all."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reports.pool import pool_all
from reports.selection import latest_results
from reports.sequential import (
    MonitoringPlan,
    monitor,
    monitoring_boundaries,
    obrien_fleming_spending,
)
from store.errors import ConfigError, PoolingError
from store.settings import load_settings, monitoring_hrs
from tests.conftest import need
from tests.test_pool import add_estimate, add_trial

SEQUENCES = [
    [0.1, 0.3, 0.6, 1.0],
    [0.05, 0.5, 0.9],
    [0.25, 0.5, 0.75, 1.0],
    [0.02, 0.2, 0.45, 0.7, 1.0],
    [0.3, 1.0],
    [0.15, 0.35, 0.4, 0.55, 0.6, 0.8, 0.85],
]

RPACT = r"""
suppressMessages(library(rpact))
args <- commandArgs(trailingOnly = TRUE)
rows <- readLines(args[1])
out <- file(args[2], "w")
for (line in rows) {
  t <- as.numeric(strsplit(line, ",")[[1]])
  k <- length(t)
  full <- if (t[k] < 1) c(t, 1) else t
  # the TSA manual's two-sided O'Brien-Fleming-type spending, given to rpact as user spending
  a <- 2 - 2 * pnorm(qnorm(1 - 0.05 / 2) / sqrt(full)); a[length(a)] <- 0.05
  u <- getDesignGroupSequential(kMax = length(full), alpha = 0.05, sided = 2,
                                typeOfDesign = "asUser", informationRates = full,
                                userAlphaSpending = a)
  o <- getDesignGroupSequential(kMax = length(full), alpha = 0.05, sided = 2,
                                typeOfDesign = "asOF", informationRates = full)
  writeLines(paste(c("tsa", sprintf("%.10f", u$criticalValues[1:k])), collapse = ","), out)
  writeLines(paste(c("asOF", sprintf("%.10f", o$criticalValues[1:k])), collapse = ","), out)
}
close(out)
"""


def rpact_asof_spending(t: float, alpha: float) -> float:
    """rpact's two-sided "asOF": the one-sided O'Brien-Fleming-type function at α/2, twice."""
    return float(4 * stats.norm.sf(stats.norm.isf(alpha / 4) / math.sqrt(min(t, 1.0))))


@pytest.fixture
def rpact(tmp_path: Path, rscript: str) -> list[dict[str, list[float]]]:
    found = subprocess.run([rscript, "-e", 'quit(status = !requireNamespace("rpact", '
                            'quietly = TRUE))'], capture_output=True, timeout=120).returncode == 0
    need(found, "R's rpact package is not installed (apt-get install r-cran-rpact)")
    script, inp, out = tmp_path / "b.R", tmp_path / "in.txt", tmp_path / "out.txt"
    script.write_text(RPACT)
    inp.write_text("\n".join(",".join(str(t) for t in seq) for seq in SEQUENCES) + "\n")
    subprocess.run([rscript, str(script), str(inp), str(out)], check=True, timeout=300,
                   capture_output=True)
    with out.open() as fh:
        rows = list(csv.reader(fh))
    return [{row[0]: [float(x) for x in row[1:]] for row in rows[i:i + 2]}
            for i in range(0, len(rows), 2)]


def test_boundaries_match_rpact(rpact) -> None:
    for seq, ref in zip(SEQUENCES, rpact, strict=True):
        for name, spending in (("tsa", obrien_fleming_spending), ("asOF", rpact_asof_spending)):
            ours = monitoring_boundaries(seq, 0.05, spending)
            after_inf = False
            for t, mine, theirs in zip(seq, ours, ref[name], strict=True):
                assert mine is not None
                if math.isinf(theirs):
                    # rpact gives up where less than ~1e-15 of α is spent; the first look's
                    # boundary is then the closed form z(α/2)/√t, far out.
                    assert mine > 8
                    after_inf = True
                    continue
                if after_inf:
                    # After a look that spent ~1e-50, crossing it first is impossible to far
                    # better than 1e-10, so the next boundary is the single-look tail exactly;
                    # rpact's own integration is off by ~2e-4 here.
                    alone = stats.norm.isf(spending(t, 0.05) / 2)
                    assert mine == pytest.approx(alone, abs=1e-6)
                    assert mine == pytest.approx(theirs, abs=5e-4), (seq, name, t)
                    after_inf = False
                    continue
                assert mine == pytest.approx(theirs, abs=1e-4), (seq, name, t)


def test_first_boundary_is_the_closed_form() -> None:
    # α(t) = 2 − 2Φ(z/√t) at a single look rejects at |Z| ≥ z/√t.
    for t in (0.05, 0.3, 0.8):
        assert monitoring_boundaries([t])[0] == pytest.approx(1.959964 / math.sqrt(t), abs=1e-6)
    assert monitoring_boundaries([1.0])[0] == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize("fractions", [[0.15, 0.35, 0.6, 0.8, 1.0], [0.4, 0.9, 1.3]])
def test_boundaries_keep_the_type_one_error_by_simulation(fractions: list[float]) -> None:
    """Brownian motion under H0 observed at the looks crosses with probability α in total,
    also when the last look overshoots the required information."""
    looks = np.array(fractions)
    bounds = np.array(monitoring_boundaries(list(looks)))
    rng = np.random.default_rng(7)
    n = 400_000
    steps = rng.normal(size=(n, len(looks))) * np.sqrt(np.diff(looks, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(looks)
    crossed = (np.abs(z) >= bounds).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / n))
    # ... while testing each look at 1.96 would not: the point of the boundaries.
    assert (np.abs(z) >= 1.959964).any(axis=1).mean() > 0.09


def test_information_beyond_the_plan() -> None:
    bounds = monitoring_boundaries([0.4, 0.9, 1.3, 1.6])
    assert bounds[3] == bounds[2]  # the plan was complete at 1.3: its final boundary holds
    # The overshooting look spends what is left of α (the simulation test checks the total).
    assert bounds[2] is not None and 1.96 < bounds[2] < 3


@pytest.mark.parametrize("bad", [[0.5, 0.4], [0.3, 0.3], [0.0, 0.5], [-0.1], [math.nan]])
def test_fractions_must_increase(bad: list[float]) -> None:
    with pytest.raises(PoolingError, match="strictly increasing"):
        monitoring_boundaries(bad)


def test_required_information_is_schoenfeld() -> None:
    # Schoenfeld (1983): 4(z₀.₉₇₅ + z₀.₈)² / ln(0.8)² ≈ 631 events for HR 0.8, α 0.05, 80%.
    plan = MonitoringPlan()
    assert 4 * plan.required_information() == pytest.approx(630.5, abs=0.5)
    assert 4 * MonitoringPlan(anticipated_hr=0.7, power=0.9).required_information() == (
        pytest.approx(4 * (1.959964 + 1.281552) ** 2 / math.log(0.7) ** 2, rel=1e-6))


@pytest.mark.parametrize("kwargs, message", [
    ({"anticipated_hr": 1.0}, "cannot be monitored"),
    ({"anticipated_hr": -0.5}, "cannot be monitored"),
    ({"anticipated_hr": math.inf}, "cannot be monitored"),
    ({"alpha": 0.7}, "outside"),
    ({"power": 1.0}, "outside"),
])
def test_plan_refuses_nonsense(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PoolingError, match=message):
        MonitoringPlan(**kwargs)


@pytest.mark.parametrize("value, expected", [
    ("0.80", {"PFS": 0.8, "OS": 0.8}),
    (0.7, {"PFS": 0.7, "OS": 0.7}),
    ("PFS=0.75, os=0.85", {"PFS": 0.75, "OS": 0.85}),
    ("OS=0.9", {"PFS": 0.8, "OS": 0.9}),
    ("0.6,OS=0.9", {"PFS": 0.6, "OS": 0.9}),
    ("1.25", {"PFS": 1.25, "OS": 1.25}),  # harm is a direction that can be monitored too
])
def test_monitoring_hr_per_endpoint(value: object, expected: dict[str, float]) -> None:
    assert monitoring_hrs(load_settings(monitoring_hr=value).monitoring_hr) == expected


@pytest.mark.parametrize("env, message", [
    ({"monitoring_hr": 1}, "MMLR_MONITORING_HR: must be a hazard ratio other than 1"),
    ({"monitoring_hr": 0}, "MMLR_MONITORING_HR"),
    ({"monitoring_hr": "nan"}, "MMLR_MONITORING_HR"),
    ({"monitoring_hr": "EFS=0.8"}, "unknown endpoint 'EFS': use PFS or OS"),
    ({"monitoring_hr": "PFS=0.7,PFS=0.8"}, "PFS is given twice"),
    ({"monitoring_hr": "0.7,0.8"}, "two HRs for every endpoint"),
    ({"monitoring_hr": "PFS=abc"}, "'abc' is not a number"),
    ({"monitoring_hr": "PFS=0.7,"}, "empty entry"),
    ({"monitoring_power": 1.2}, "MMLR_MONITORING_POWER: must be at least 0.5 and below 1"),
])
def test_settings_refuse_nonsense(env: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**env)


# ----------------------------------------------------------------------------- verdicts
def steps_of(studies: list[tuple[float, float]], *, years: list[int] | None = None) -> list[dict]:
    """Cumulative steps as reports.pool builds them: one trial more at each step."""
    out = []
    for i in range(len(studies)):
        year = (years or list(range(2005, 2005 + len(studies))))[i]
        out.append({"date": f"{year}-12-31", "date_label": str(year), "k": i + 1,
                    "studies": [{"trial": f"T{j}", "estimate_id": j, "yi": y, "sei": s}
                                for j, (y, s) in enumerate(studies[:i + 1])]})
    return out


def test_open_when_little_information() -> None:
    view = monitor(steps_of([(-0.1, 0.3), (0.05, 0.35)]), MonitoringPlan(), method="REML")
    assert view is not None and view["status"] == "open"
    assert view["fraction"] < 0.2 and "more evidence is needed" in view["text"]
    assert view["text"].endswith("the primary analysis is the pooled estimate above.")
    info = 1 / 0.3**2 + 1 / 0.35**2
    assert view["looks"][-1]["information"] == pytest.approx(info)
    assert view["looks"][-1]["events_equivalent"] == pytest.approx(4 * info)


def test_conventional_significance_inside_the_boundary() -> None:
    # Z ≈ −2.2 from ~25% of the required information: significant at 1.96, not at the boundary.
    view = monitor(steps_of([(-0.45, 0.28), (-0.5, 0.3)]), MonitoringPlan(), method="REML")
    assert view is not None
    assert abs(view["z"]) > 1.96 and view["boundary"] > abs(view["z"])
    assert view["status"] == "conventional_only"
    assert "possibly a false positive of repeated testing" in view["text"]


def test_firm_evidence_and_the_direction() -> None:
    studies = [(-0.4, 0.2), (-0.3, 0.15), (-0.5, 0.12), (-0.35, 0.1)]
    view = monitor(steps_of(studies), MonitoringPlan(), method="REML")
    assert view is not None and view["status"] == "firm_evidence"
    crossed = next(lk for lk in view["looks"] if abs(lk["z"]) >= (lk["boundary"] or math.inf))
    assert "evidence of " + crossed["date_label"] in view["text"]
    assert "favouring maintenance" in view["text"] and view["favours"] == "maintenance"
    harm = monitor(steps_of([(-y, s) for y, s in studies]), MonitoringPlan(), method="REML")
    assert harm is not None and "favouring control" in harm["text"]


def test_a_crossing_at_the_undated_look_is_said_in_words() -> None:
    """Estimates without a data cut or report year are the first look (date None, label
    "undated", as reports.pool builds it): the sentence must not read "the evidence of
    undated"."""
    studies = [(-0.5, 0.08), (-0.4, 0.1)]
    steps = steps_of(studies)
    steps[0] = {**steps[0], "date": None, "date_label": "undated"}
    view = monitor(steps, MonitoringPlan(), method="REML")
    assert view is not None and view["status"] == "firm_evidence"
    assert view["looks"][0]["date"] is None and abs(view["looks"][0]["z"]) >= view["looks"][0][
        "boundary"]
    assert "with the undated evidence (estimates without a data cut or report year)" in view[
        "text"]
    assert "evidence of undated" not in view["text"]


def test_back_inside_after_crossing_is_said() -> None:
    # Two strong early trials cross; three large null trials pull the curve back.
    studies = [(-0.6, 0.1), (-0.55, 0.1), (0.05, 0.06), (0.08, 0.06), (0.1, 0.06)]
    view = monitor(steps_of(studies), MonitoringPlan(anticipated_hr=0.6), method="FE")
    assert view is not None and view["status"] == "firm_evidence"
    assert "back inside" in view["text"]


def test_required_information_reached_without_crossing() -> None:
    studies = [(-0.02, 0.08), (0.03, 0.07), (-0.01, 0.06)]
    view = monitor(steps_of(studies), MonitoringPlan(anticipated_hr=0.7), method="REML")
    assert view is not None and view["fraction"] >= 1
    assert view["status"] == "required_information_reached"
    assert "as large as HR 0.7 is unlikely" in view["text"]


def test_evidence_past_the_final_boundary_after_the_plan_is_complete_is_said() -> None:
    """The plan completed at a look without a crossing; the looks after it had no boundary, so
    the verdict kept "an effect as large as HR 0.8 is unlikely" while the pooled HR was
    0.83 (0.74–0.94) and Z −4.77 (a reviewer's three thalidomide trials)."""
    studies = [(math.log(0.88), 0.0687), (math.log(0.82), 0.0655), (math.log(0.80), 0.0672)]
    view = monitor(steps_of(studies), MonitoringPlan(anticipated_hr=0.8), method="REML")
    assert view is not None and view["looks"][0]["fraction"] >= 1
    assert abs(view["looks"][0]["z"]) < view["looks"][0]["boundary"]  # the plan completed
    assert view["status"] == "firm_evidence" and "unlikely" not in view["text"]
    assert view["boundary"] == view["looks"][0]["boundary"]  # held to the final boundary
    assert "went past the plan's final boundary" in view["text"]


def test_heterogeneity_raises_the_required_information() -> None:
    homogeneous = monitor(steps_of([(-0.3, 0.15), (-0.3, 0.15)]), MonitoringPlan(),
                          method="REML")
    diverse = monitor(steps_of([(-0.9, 0.1), (0.3, 0.12)]), MonitoringPlan(), method="REML")
    fixed = monitor(steps_of([(-0.9, 0.1), (0.3, 0.12)]), MonitoringPlan(), method="FE")
    assert homogeneous and diverse and fixed
    base = MonitoringPlan().required_information()
    assert homogeneous["diversity"] == 0 and homogeneous["required_information"] == base
    assert fixed["diversity"] == 0
    assert 0.9 < diverse["diversity"] < 1
    assert diverse["required_information"] == pytest.approx(base / (1 - diverse["diversity"]))


def test_a_step_that_loses_information_is_not_a_new_look() -> None:
    steps = steps_of([(-0.3, 0.2), (-0.2, 0.15)])
    # A later step where the second trial left again: less information than before.
    steps.append({**steps[0], "date": "2010-12-31", "date_label": "2010"})
    view = monitor(steps, MonitoringPlan(), method="REML")
    assert view is not None
    assert [lk["new_look"] for lk in view["looks"]] == [True, True, False]
    assert view["looks"][2]["boundary"] is None and view["looks"][1]["boundary"] is not None


def test_no_steps_no_view() -> None:
    assert monitor([], MonitoringPlan(), method="REML") is None


# ----------------------------------------------------------------------------- in pool_all
def test_pool_all_stores_the_view_and_replans(ctx, settings) -> None:
    from store.context import make_context

    with ctx.sessions() as s:
        for i, (hr, lo, hi) in enumerate([("0.60", "0.45", "0.80"), ("0.70", "0.55", "0.89"),
                                          ("0.65", "0.50", "0.85")]):
            trial = add_trial(s, f"Trial {i}")
            add_estimate(s, trial, hr, lo, hi, cut=date(2008 + 2 * i, 6, 1))
        add_estimate(s, trial, "0.85", "0.70", "1.03", endpoint="OS", cut=date(2012, 6, 1))
        s.commit()
    run = pool_all(ctx)
    doc = json.loads(json.dumps(run.to_json()))
    entry = next(a for a in doc["analyses"] if a["name"] == "thalidomide/PFS/post_asct")
    view = entry["monitoring"]
    assert [lk["k"] for lk in view["looks"]] == [1, 2, 3]
    assert view["plan"] == {"anticipated_hr": 0.8, "alpha": 0.05, "power": 0.8}
    os_view = next(a for a in doc["analyses"] if a["name"] == "thalidomide/OS/post_asct")
    assert os_view["monitoring"]["plan"]["anticipated_hr"] == 0.8
    assert view["status"] in {"firm_evidence", "conventional_only"}
    with ctx.sessions() as s:
        snap = {p.analysis_key: p for p in latest_results(s)}["thalidomide/PFS/post_asct"]
    assert snap.result["monitoring"] == view
    # Another plan is another snapshot (the settings are part of what a snapshot freezes).
    # ... and a plan per endpoint applies to each analysis by its endpoint.
    other = make_context(settings.model_copy(update={"monitoring_hr": "PFS=0.6,OS=0.9"}),
                         upgrade=False)
    try:
        again = pool_all(other)
        changed = {o.analysis.key: o for o in again.changed}
        new_view = changed["thalidomide/PFS/post_asct"].extras["monitoring"]
        assert new_view["required_information"] < view["required_information"]
        assert new_view["plan"]["anticipated_hr"] == 0.6
        assert changed["thalidomide/OS/post_asct"].extras["monitoring"]["plan"][
            "anticipated_hr"] == 0.9
        assert pool_all(other).changed == []
    finally:
        other.dispose()


def test_firm_evidence_the_primary_ci_does_not_show_is_called_out() -> None:
    steps = steps_of([(-0.6, 0.1), (-0.1, 0.12)])
    plan = MonitoringPlan(anticipated_hr=0.7)
    view = monitor(steps, plan, method="REML")
    assert view is not None and view["status"] == "firm_evidence"
    assert not view["primary_disagrees"]
    agreeing = monitor(steps, plan, method="REML", primary_ci=(-0.5, -0.1))
    assert agreeing == view  # the primary agrees: nothing to add
    said = monitor(steps, plan, method="REML", primary_ci=(-1.7, 0.5))  # HKSJ, two trials
    assert said is not None and said["primary_disagrees"]
    assert "still includes no effect" in said["text"]
    assert said["text"].endswith("the primary analysis is the pooled estimate above.")
    # ... and nothing is claimed when the monitoring itself found no firm evidence.
    open_view = monitor(steps_of([(-0.1, 0.3)]), plan, method="REML", primary_ci=(-1.0, 1.0))
    assert open_view is not None and not open_view["primary_disagrees"]


def test_the_settings_know_the_endpoints_of_the_analyses() -> None:
    # store.settings cannot import reports (the package rule), so it names the endpoints an
    # MMLR_MONITORING_HR entry may use itself; they must be the analyses' endpoints.
    from reports.analyses import ENDPOINTS
    from store.settings import MONITORING_ENDPOINTS

    assert set(MONITORING_ENDPOINTS) == set(ENDPOINTS)


def test_the_verdict_writes_z_half_up_as_every_report_does() -> None:
    """Z, the boundary and the share of information are written by reports.words (half-up
    on the decimal digits), not by format(), which rounds the binary value half-even:
    Z = 1.025 is "1.03" in the words as in the table beside them."""
    from reports.sequential import MonitoringPlan, _verdict

    looks = [{"z": -1.025, "boundary": 3.5, "fraction": 0.125, "date": None}]
    verdict = _verdict(looks, MonitoringPlan(), 100.0, 0.0, None)
    assert verdict["text"].startswith("Not significant (Z = -1.03), 13% of the required")
