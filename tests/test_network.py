"""Network meta-analysis over the stored evidence: arms read from the trials, curator
overrides, which trials enter, the known answers of small networks, the page, the API, the
CLI and the digest's section."""

from __future__ import annotations

import csv
import html
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import lxml.html
import numpy as np
import pytest
import test_web
from conftest import assert_one_line_error, cli_env, run_cli
from test_pool import add_estimate, add_trial
from test_web import api_as, as_role, make_user

from reports.analyses import Candidate, load_arm_overrides
from reports.digest import build_digest
from reports.network import Contrast, network_meta_analysis, rucker_variances
from reports.network_inputs import (
    AGENTS,
    NO_MAINTENANCE,
    build_networks,
    networks_for,
    node_sizes,
    plot_parts,
    read_arms,
)
from reports.network_plot import render_network_svg
from reports.selection import load_candidates
from reports.words import hr_ci_text
from store.errors import ConfigError, MmlrError, PoolingError

app = test_web.app
client = test_web.client
users = test_web.users

XSS = '<script>alert("x")</script>'


def _cand(drug: str, regimen: str | None, comparator: str | None, **kw: Any) -> Candidate:
    base: dict[str, Any] = dict(estimate_id=1, trial_id=1, trial_name="T", drug=drug,
                                is_strategy=False, endpoint="PFS", setting="post_asct",
                                comparison="maintenance vs control", log_hr=-0.3, se=0.1,
                                verified=True, regimen=regimen, comparator=comparator)
    base.update(kw)
    return Candidate(**base)


# ----------------------------------------------------------------------------- arms
@pytest.mark.parametrize(("drug", "regimen", "comparator", "arms"), [
    ("lenalidomide", "lenalidomide", "placebo", ("lenalidomide", NO_MAINTENANCE)),
    # add-on designs: the comparator's agents are background (CEMSG 01-002-0601, S0232)
    ("thalidomide", "thalidomide + interferon-alpha", "interferon-alpha",
     ("thalidomide", NO_MAINTENANCE)),
    ("lenalidomide", "lenalidomide + dexamethasone", "placebo + dexamethasone",
     ("lenalidomide", NO_MAINTENANCE)),
    # an active comparator (HOVON-50; HOVON-65/GMMG-HD4)
    ("thalidomide", "thalidomide", "interferon-alpha", ("thalidomide", "interferon")),
    ("bortezomib", "bortezomib (PAD induction + bortezomib maintenance)",
     "VAD induction + thalidomide maintenance", ("bortezomib", "thalidomide")),
    # negations and induction-only comparators name no maintenance agent
    ("thalidomide", "thalidomide", "no thalidomide", ("thalidomide", NO_MAINTENANCE)),
    ("thalidomide", "thalidomide", "MP (no maintenance)", ("thalidomide", NO_MAINTENANCE)),
    ("thalidomide", None, None, ("thalidomide", NO_MAINTENANCE)),
    # a dose comparison: both arms thalidomide
    ("thalidomide", "thalidomide 200 mg", "thalidomide 50 mg", ("thalidomide", "thalidomide")),
    # two agents left: a combination control
    ("daratumumab", "daratumumab", "lenalidomide + dexamethasone",
     ("daratumumab", "dexamethasone+lenalidomide")),
    # a hyphen or a digit after a name is a boundary: these read as no maintenance
    ("thalidomide", "thalidomide", "interferon-α", ("thalidomide", "interferon")),
    ("thalidomide", "thalidomide", "IFN-α2b", ("thalidomide", "interferon")),
    ("thalidomide", "thalidomide", "α-interferon", ("thalidomide", "interferon")),
    ("bortezomib", "bortezomib", "thalidomide-interferon",
     ("bortezomib", "interferon+thalidomide")),
    # induction, and treatment at relapse or progression, are not maintenance
    ("lenalidomide", "lenalidomide", "melphalan + prednisone induction only (no maintenance)",
     ("lenalidomide", NO_MAINTENANCE)),
    ("lenalidomide", "lenalidomide", "observation; dex allowed at progression",
     ("lenalidomide", NO_MAINTENANCE)),
    ("lenalidomide", "lenalidomide", "no maintenance; lenalidomide at relapse",
     ("lenalidomide", NO_MAINTENANCE)),
    ("thalidomide", "thalidomide", "interferon until progression",
     ("thalidomide", "interferon")),
    # a negation takes the list it names; a matching placebo is a placebo
    ("thalidomide", "thalidomide", "without thalidomide or interferon",
     ("thalidomide", NO_MAINTENANCE)),
    ("ixazomib", "ixazomib", "placebo (matching ixazomib)", ("ixazomib", NO_MAINTENANCE)),
    ("ixazomib", "ixazomib", "ixazomib-matched placebo", ("ixazomib", NO_MAINTENANCE)),
])
def test_arms_are_read_from_drug_regimen_and_comparator(
        drug: str, regimen: str | None, comparator: str | None, arms: tuple[str, str]) -> None:
    assert read_arms(_cand(drug, regimen, comparator), dict(AGENTS)) == arms


def test_a_drug_the_review_pools_is_known_in_comparators() -> None:
    cands = [_cand("elranatamab", "elranatamab", "placebo"),
             _cand("teclistamab", "teclistamab", "elranatamab", trial_id=2, trial_name="U",
                   estimate_id=2)]
    nets = build_networks(cands)
    arms = {a.trial: (a.treatment, a.control) for a in nets[0].arms}
    assert arms == {"T": ("elranatamab", NO_MAINTENANCE), "U": ("teclistamab", "elranatamab")}


def _arms_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "analyses.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_arm_overrides_are_read(tmp_path: Path) -> None:
    path = _arms_file(tmp_path, '[[arms]]\ntrial = " HOVON-50 "\ntreatment = "Thalidomide"\n'
                                'control = "interferon  alpha"\n')
    assert load_arm_overrides(path) == {"hovon-50": {None: ("thalidomide", "interferon alpha")}}
    three = _arms_file(tmp_path, '[[arms]]\ntrial = "GEM"\ncomparison = "VT versus IFN"\n'
                                 'treatment = "bortezomib+thalidomide"\ncontrol = "interferon"\n'
                                 '[[arms]]\ntrial = "GEM"\ncomparison = "T vs IFN"\n'
                                 'treatment = "thalidomide"\ncontrol = "interferon"\n')
    assert load_arm_overrides(three) == {"gem": {
        "vt vs ifn": ("bortezomib+thalidomide", "interferon"),
        "t vs ifn": ("thalidomide", "interferon")}}
    assert load_arm_overrides(None) == {}


@pytest.mark.parametrize(("text", "message"), [
    ('[[arms]]\ntrial = "A"\ntreatment = "x"\n', "arms 1: missing control"),
    ('[[arms]]\ntrial = "A"\ntreatment = "x"\ncontrol = "y"\ncolour = 1\n',
     "unknown key(s) colour"),
    ('[[arms]]\ntrial = "A"\ntreatment = "X"\ncontrol = "x "\n', "treatment and control are both"),
    ('[[arms]]\ntrial = "A"\ntreatment = ""\ncontrol = "y"\n', "must be non-empty text"),
    ('[[arms]]\ntrial = "A"\ntreatment = "x"\ncontrol = "y"\n'
     '[[arms]]\ntrial = "a"\ntreatment = "x"\ncontrol = "z"\n', "has two [[arms]] entries"),
    ('arms = "x"\n', "expected [[arms]] tables"),
    ('[[arms]]\ntrial = "A"\ncomparison = "B vs C"\ntreatment = "b"\ncontrol = "c"\n'
     '[[arms]]\ntrial = "A"\ncomparison = "b  versus c"\ntreatment = "b"\ncontrol = "d"\n',
     "has two [[arms]] entries for comparison 'b  versus c'"),
    ('[[arms]]\ntrial = "A"\ncomparison = "B vs C"\ntreatment = "b"\ncontrol = "c"\n'
     '[[arms]]\ntrial = "A"\ntreatment = "b"\ncontrol = "d"\n',
     "entries with and without a comparison"),
    ('[[arms]]\ntrial = "A"\ncomparison = "maintenance vs control"\ntreatment = "b"\n'
     'control = "c"\n', "must name a contrast as the trial's estimates do"),
    # "evil" shown as "live" in rankings, tables and the SVG: refused as the web app does
    ('[[arms]]\ntrial = "A"\ntreatment = "x \\u202e evil"\ncontrol = "y"\n',
     "arms 1: treatment has a bidirectional control (U+202E), which shows the text after "
     "it reordered"),
    ('[[arms]]\ntrial = "A\\u202a"\ntreatment = "x"\ncontrol = "y"\n',
     "arms 1: trial has a bidirectional control (U+202A)"),
    ('[[arms]]\ntrial = "A"\ncomparison = "B vs C\\u202d"\ntreatment = "b"\ncontrol = "c"\n',
     "arms 1: comparison has a bidirectional control (U+202D)"),
])
def test_arm_override_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_arm_overrides(_arms_file(tmp_path, text))


# ----------------------------------------------------------------------------- engine facts
def test_a_loop_of_single_trials_gives_bucher_and_a_consistency_test() -> None:
    rows = [Contrast("AC", "a", "c", -0.5, 0.2), Contrast("BC", "b", "c", -0.2, 0.25),
            Contrast("AB", "a", "b", 0.4, 0.3)]
    res = network_meta_analysis(rows, reference="c", method="FE")
    split = {(s.treat, s.control): s for s in res.splits}[("b", "a")]
    # indirect b vs a through c: (−0.2) − (−0.5) = 0.3, variance 0.25² + 0.2²
    assert split.indirect == pytest.approx(0.3)
    assert split.indirect_se == pytest.approx(math.hypot(0.25, 0.2))
    assert split.direct == pytest.approx(-0.4)
    # one loop, one inconsistency degree of freedom; no design has two trials
    assert (res.q_between.df, res.q_within.df) == (1, 0)
    z = (-0.4 - 0.3) / math.hypot(0.3, math.hypot(0.25, 0.2))
    assert res.q_between.q == pytest.approx(z * z)


def _triangle_weights(r_ap: float, r_bp: float, r_ab: float) -> dict[str, float]:
    """Rücker's weights of a three-arm trial's pairs in closed form (the conductances of a
    triangle whose effective resistances are the pairwise variances)."""
    d = (2 * (r_ap * r_bp + r_ap * r_ab + r_bp * r_ab) - r_ap**2 - r_bp**2 - r_ab**2) / 2
    return {"ab": (r_ap + r_bp - r_ab) / d, "ap": (r_ab + r_bp - r_ap) / d,
            "bp": (r_ab + r_ap - r_bp) / d}


def test_every_pair_a_multi_arm_trial_randomised_is_direct_evidence() -> None:
    """A trial of a, b and p enters as a vs p and b vs p, but randomised a against b too: its
    a vs b (the difference) is direct evidence beside the two a-vs-b trials, three trials in
    all. Its three pairs are not three independent trials: as netmeta's netsplit, each is
    weighted by Rücker's method from the trial's pairwise variances (v_a + v_b − 2·cov with
    the model's correlation ½ for a vs b, plus τ² each), not at full weight."""
    rows = [Contrast("T1", "a", "p", math.log(0.6), 0.15),
            Contrast("T1", "b", "p", math.log(0.8), 0.2),
            Contrast("T2", "a", "p", math.log(0.7), 0.12),
            Contrast("T3", "b", "p", math.log(0.9), 0.18),
            Contrast("T4", "a", "b", math.log(0.5), 0.2),
            Contrast("T5", "a", "b", math.log(1.2), 0.25)]
    for method in ("FE", "REML"):
        res = network_meta_analysis(rows, reference="p", method=method)
        splits = {(s.treat, s.control): s for s in res.splits}
        assert {k: s.k_direct for k, s in splits.items()} == {
            ("a", "p"): 2, ("b", "p"): 2, ("b", "a"): 3}
        t1 = _triangle_weights(0.15**2 + res.tau2, 0.2**2 + res.tau2,
                               0.15**2 + 0.2**2 - 0.15 * 0.2 + res.tau2)
        # b vs a, as the split orients it: T1's b − a, then the two trials flipped
        y = [math.log(0.8) - math.log(0.6), -math.log(0.5), -math.log(1.2)]
        w = [t1["ab"], 1 / (0.2**2 + res.tau2), 1 / (0.25**2 + res.tau2)]
        ba = splits[("b", "a")]
        pooled = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sum(w)
        assert ba.direct == pytest.approx(pooled)
        assert ba.direct_se == pytest.approx(1 / math.sqrt(sum(w)))
        assert ba.approximate and ba.indirect is not None
        # a vs p: T1's own contrast, Rücker-weighted too, beside T2 at full weight
        w = [t1["ap"], 1 / (0.12**2 + res.tau2)]
        ap = splits[("a", "p")]
        assert ap.direct_se == pytest.approx(1 / math.sqrt(sum(w)))
    # one three-arm trial alone, of equal SEs: each pair's variance is 1.5 times its own
    # (a/2 for a arms), so the trial counts once; netsplit then back-calculates the rest of
    # it, through p, as an indirect a vs b that agrees with the direct one
    alone = [Contrast("T1", "a", "p", math.log(0.6), 0.2),
             Contrast("T1", "b", "p", math.log(0.8), 0.2)]
    res = network_meta_analysis(alone, reference="p")
    ba = {(s.treat, s.control): s for s in res.splits}[("b", "a")]
    assert ba.k_direct == 1
    assert ba.direct == pytest.approx(math.log(0.8) - math.log(0.6))
    assert ba.direct_se == pytest.approx(math.sqrt(1.5 * 0.2**2))
    assert ba.direct_share == pytest.approx(2 / 3)
    assert ba.indirect == pytest.approx(ba.direct) and ba.p == pytest.approx(1.0)


def test_rucker_variances_count_a_trial_once() -> None:
    """a arms of equal pairwise variance v: each pair's variance is v·a/2; two arms: v."""
    for arms in (2, 3, 4, 6):
        v = 0.09 * (np.ones((arms, arms)) - np.eye(arms))
        out = rucker_variances(v)
        assert out[0, 1] == pytest.approx(0.09 * arms / 2)
        assert out[arms - 1, 0] == pytest.approx(0.09 * arms / 2)
    # unequal variances: the triangle's closed form
    r = {"ap": 0.04, "bp": 0.06, "ab": 0.07}
    w = _triangle_weights(r["ap"], r["bp"], r["ab"])
    out = rucker_variances(np.array([[0, r["ap"], r["bp"]], [r["ap"], 0, r["ab"]],
                                     [r["bp"], r["ab"], 0]]))
    assert (out[0, 1], out[0, 2], out[1, 2]) == pytest.approx(
        (1 / w["ap"], 1 / w["bp"], 1 / w["ab"]))
    # far-apart variances give a negative weight: that pair takes nothing from the trial
    out = rucker_variances(np.array([[0, 1.0, 0.0625], [1.0, 0, 0.8125],
                                     [0.0625, 0.8125, 0]]))
    assert out[0, 1] == math.inf and math.isfinite(out[0, 2])


def test_a_multi_arm_pair_is_not_counted_as_an_independent_trial() -> None:
    """A reviewer's network (netmeta-style split, Rücker's weights): trial M randomised r, a
    and b; b vs a is also in no other trial. Counted as an independent pair it gave direct
    SE 0.200, indirect HR 0.91, share 51%, p 0.166; netsplit's weighting gives 0.300,
    1.05, 23%, 0.461."""
    rows = [Contrast("M", "r", "a", 0.4, 0.15), Contrast("M", "b", "a", 0.3, 0.2),
            Contrast("X", "b", "r", -0.3, 0.2), Contrast("Y", "a", "r", -0.2, 0.1),
            Contrast("Z", "c", "b", 0.1, 0.3), Contrast("Z2", "c", "r", -0.1, 0.3)]
    res = network_meta_analysis(rows, reference="r", method="FE")
    ba = {(s.treat, s.control): s for s in res.splits}[("b", "a")]
    assert ba.direct_se == pytest.approx(0.300, abs=5e-4)
    assert ba.indirect is not None and math.exp(ba.indirect) == pytest.approx(1.05, abs=5e-3)
    assert ba.direct_share == pytest.approx(0.23, abs=5e-3)
    assert ba.p == pytest.approx(0.461, abs=5e-4)


def test_a_star_network_has_no_indirect_check_and_a_disconnected_trial_is_named() -> None:
    rows = [Contrast("A1", "a", "c", -0.5, 0.2), Contrast("B1", "b", "c", -0.2, 0.25),
            Contrast("X1", "x", "y", -0.1, 0.3)]
    res = network_meta_analysis(rows, reference="c")
    assert res.treatments == ["c", "a", "b"]
    assert all(s.indirect is None for s in res.splits)
    assert res.q_between.p is None
    assert [c.study for c in res.disconnected] == ["X1"]
    assert any("not connected to c: X1" in n for n in res.notes)
    rel = res.relative("a", "b")  # indirect only: difference of the two, variances added
    assert rel.log_hr == pytest.approx(-0.3) and rel.se == pytest.approx(math.hypot(0.2, 0.25))


@pytest.mark.parametrize(("rows", "message"), [
    ([], "no contrasts"),
    ([Contrast("A", "a", "a", -0.1, 0.1)], "cannot be compared with itself"),
    ([Contrast("A", "a", "b", math.nan, 0.1)], "not a finite number"),
    ([Contrast("A", "a", "b", -0.1, 0.0)], "positive finite"),
    ([Contrast("A", "a", "b", -0.1, 0.1), Contrast("A", "b", "a", 0.1, 0.1)],
     "same pair of treatments twice"),
    ([Contrast("A", "a", "b", -0.1, 0.1), Contrast("A", "c", "d", 0.1, 0.1)],
     "do not share one arm"),
])
def test_malformed_networks_are_refused_with_the_reason(rows: list[Contrast],
                                                        message: str) -> None:
    with pytest.raises(PoolingError, match=message):
        network_meta_analysis(rows)


def test_unknown_reference_and_method_are_refused() -> None:
    rows = [Contrast("A", "a", "b", -0.1, 0.1)]
    with pytest.raises(PoolingError, match="reference treatment 'z' is in no trial"):
        network_meta_analysis(rows, reference="z")
    with pytest.raises(PoolingError, match="unknown network method 'DL'"):
        network_meta_analysis(rows, method="DL")


def test_a_three_arm_trial_enters_as_two_correlated_contrasts() -> None:
    # The same trial as two separate two-arm trials would count its control arm twice: the
    # shared-arm covariance makes the indirect a-vs-b estimate less precise than that.
    three = [Contrast("T", "a", "c", -0.4, 0.2), Contrast("T", "c", "b", 0.1, 0.2)]
    two = [Contrast("T1", "a", "c", -0.4, 0.2), Contrast("T2", "b", "c", -0.1, 0.2)]
    joint = network_meta_analysis(three, reference="c", method="FE").relative("a", "b")
    apart = network_meta_analysis(two, reference="c", method="FE").relative("a", "b")
    assert joint.log_hr == pytest.approx(apart.log_hr) == pytest.approx(-0.3)
    # var(a−b) = 0.04 + 0.04 − 2·cov, cov = 0.5·0.2·0.2 = 0.02 → 0.04
    assert joint.se == pytest.approx(0.2) and apart.se == pytest.approx(math.sqrt(0.08))


def test_a_multi_arm_trial_counts_each_of_its_arms_once_in_the_node_sizes() -> None:
    """A's and B's contrasts both carry the trial's placebo arm: 100 patients, not 200; and
    a six-arm trial's 120-patient control is 120, not five times it."""
    rows = [Contrast("T1", "a", "p", math.log(0.6), 0.15, n_treat=100, n_control=100),
            Contrast("T1", "b", "p", math.log(0.8), 0.2, n_treat=100, n_control=100),
            Contrast("T2", "a", "p", math.log(0.7), 0.2, n_treat=90, n_control=None)]
    sizes = node_sizes(network_meta_analysis(rows, reference="p"))
    # T2's placebo arm size is missing: the count is unknown, the trials still two
    assert sizes == {"p": (2, None), "a": (2, 190), "b": (1, 100)}
    assert node_sizes(network_meta_analysis(rows[:2], reference="p"))["p"] == (1, 100)
    six = [Contrast("SIX", f"arm{i}", "p", -0.1 * (i + 1), 0.2, n_treat=80, n_control=120)
           for i in range(5)]
    sizes = node_sizes(network_meta_analysis(six, reference="p"))
    assert sizes["p"] == (1, 120) and sizes["arm0"] == (1, 80)


def test_the_plot_draws_every_pair_a_multi_arm_trial_randomised() -> None:
    """An a/b/p trial entered as a vs p and b vs p randomised a against b too: the plot has
    that line (with the a-vs-b trial beside it: 2 trials), not an indirect-looking gap."""
    rows = [Contrast("T1", "a", "p", math.log(0.6), 0.15, n_treat=100, n_control=100),
            Contrast("T1", "b", "p", math.log(0.8), 0.2, n_treat=100, n_control=100),
            Contrast("T2", "a", "b", math.log(0.9), 0.2)]
    res = network_meta_analysis(rows, reference="p")
    nodes, edges = plot_parts(res)
    assert {frozenset((e.a, e.b)): (e.trials, e.names) for e in edges} == {
        frozenset(("p", "a")): (1, ("T1",)), frozenset(("p", "b")): (1, ("T1",)),
        frozenset(("a", "b")): (2, ("T1", "T2"))}
    # as many trials per pair as the direct-evidence table counts
    assert sorted(e.trials for e in edges) == sorted(s.k_direct for s in res.splits)
    svg = render_network_svg(nodes, edges, title="t", reference="p")
    desc = re.search(r"<desc[^>]*>(.*?)</desc>", svg, re.S)
    assert desc is not None
    assert ("3 direct comparisons from 2 trials (4 trial comparisons: a multi-arm trial "
            "counts once for each pair of its arms)") in desc.group(1)


# ----------------------------------------------------------------------------- stored evidence
def _trial(s: Any, name: str, drug: str, comparator: str, regimen: str | None = None,
           **kw: Any) -> Any:
    trial = add_trial(s, name, drug, **kw)
    trial.comparator = comparator
    trial.regimen = regimen or drug
    s.add(trial)
    return trial


@pytest.fixture
def network_evidence(ctx: Any) -> Any:
    """Post-ASCT PFS: thalidomide and lenalidomide against placebo, thalidomide against
    interferon and interferon against observation (a loop), a strategy trial, an unverified
    estimate, and a dose comparison."""
    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "THAL-1", "thalidomide", "placebo"), "0.60", "0.45", "0.80")
        add_estimate(s, _trial(s, "THAL-2", "thalidomide", "observation"),
                     "0.70", "0.50", "0.98")
        add_estimate(s, _trial(s, "LEN-1", "lenalidomide", "placebo"), "0.50", "0.40", "0.63")
        add_estimate(s, _trial(s, XSS, "lenalidomide", "placebo"), "0.55", "0.40", "0.76")
        add_estimate(s, _trial(s, "HOVON-X", "thalidomide", "interferon-alpha"),
                     "0.80", "0.62", "1.03")
        add_estimate(s, _trial(s, "IFN-1", "interferon", "no maintenance"),
                     "0.85", "0.70", "1.03")
        add_estimate(s, _trial(s, "STRAT-1", "bortezomib", "thalidomide maintenance",
                               is_strategy=True), "0.75", "0.62", "0.90")
        add_estimate(s, _trial(s, "LEN-UNVERIFIED", "lenalidomide", "placebo"),
                     "0.30", "0.20", "0.45", verified=False)
        add_estimate(s, _trial(s, "DOSE-1", "thalidomide", "thalidomide 50 mg",
                               regimen="thalidomide 200 mg"), "0.90", "0.70", "1.15")
        s.commit()
    return ctx


def _fit(ctx: Any, key: str, analyses_file: Path | None = None) -> Any:
    with ctx.sessions() as s:
        items = networks_for(load_candidates(s), analyses_file)
    return next(item for item in items if item[0].key == key)


def test_stored_trials_enter_as_their_arms_and_numbers(network_evidence: Any) -> None:
    net, res, why = _fit(network_evidence, "PFS/post_asct")
    assert why == "" and res is not None
    assert res.reference == NO_MAINTENANCE
    assert set(res.treatments) == {NO_MAINTENANCE, "thalidomide", "lenalidomide", "interferon"}
    # the same numbers as the engine on the contrasts written by hand
    def lg(hr: float, lo: float, hi: float) -> tuple[float, float]:
        return math.log(hr), (math.log(hi) - math.log(lo)) / (2 * 1.959964)
    by_hand = [Contrast(n, t, c, *lg(*v)) for n, t, c, v in [
        ("THAL-1", "thalidomide", NO_MAINTENANCE, (0.60, 0.45, 0.80)),
        ("THAL-2", "thalidomide", NO_MAINTENANCE, (0.70, 0.50, 0.98)),
        ("LEN-1", "lenalidomide", NO_MAINTENANCE, (0.50, 0.40, 0.63)),
        (XSS, "lenalidomide", NO_MAINTENANCE, (0.55, 0.40, 0.76)),
        ("HOVON-X", "thalidomide", "interferon", (0.80, 0.62, 1.03)),
        ("IFN-1", "interferon", NO_MAINTENANCE, (0.85, 0.70, 1.03))]]
    ref = network_meta_analysis(by_hand, reference=NO_MAINTENANCE)
    for t in ("thalidomide", "lenalidomide", "interferon"):
        ours, theirs = res.relative(t, NO_MAINTENANCE), ref.relative(t, NO_MAINTENANCE)
        assert ours.log_hr == pytest.approx(theirs.log_hr, abs=1e-9)
        assert ours.se == pytest.approx(theirs.se, abs=1e-9)
    assert res.q_between.df == 1  # the thalidomide–interferon–no maintenance loop
    dropped = dict(net.dropped)
    assert dropped["LEN-UNVERIFIED, estimate 8"] == "not verified"
    assert "strategy trial" in dropped["STRAT-1, estimate 7"]
    assert "both arms read as 'thalidomide'" in dropped["DOSE-1"]


def test_strategy_trials_enter_only_the_sensitivity_network(network_evidence: Any) -> None:
    _, res, _ = _fit(network_evidence, "PFS/post_asct/with_strategy")
    assert "bortezomib" in res.treatments
    assert ("bortezomib", "thalidomide") in {(c.treat, c.control) for c in res.contrasts}
    _, primary, _ = _fit(network_evidence, "PFS/post_asct")
    assert "bortezomib" not in primary.treatments


def test_an_arms_entry_overrides_the_reading(network_evidence: Any, tmp_path: Path) -> None:
    path = _arms_file(tmp_path, '[[arms]]\ntrial = "thal-2"\ntreatment = "thalidomide"\n'
                                'control = "interferon"\n')
    net, res, _ = _fit(network_evidence, "PFS/post_asct", path)
    arms = {a.trial: a for a in net.arms}
    assert (arms["THAL-2"].control, arms["THAL-2"].source) == (
        "interferon", "MMLR_ANALYSES_FILE [[arms]]")
    assert arms["THAL-1"].source == "read from the trial"
    # HOVON-X and THAL-2 now both compare thalidomide with interferon
    split = next(x for x in res.splits if {x.treat, x.control} == {"thalidomide", "interferon"})
    assert split.k_direct == 2


@pytest.mark.parametrize("control", ["placebo", "Observation", "no  maintenance"])
def test_an_arms_entry_naming_placebo_or_observation_is_no_maintenance(
        network_evidence: Any, tmp_path: Path, control: str) -> None:
    # Read from a comparator they are no maintenance; an [[arms]] entry naming them made a
    # node of its own, which left its trials unconnected to the network.
    path = _arms_file(tmp_path, f'[[arms]]\ntrial = "THAL-1"\ntreatment = "thalidomide"\n'
                                f'control = "{control}"\n')
    net, res, _ = _fit(network_evidence, "PFS/post_asct", path)
    (row,) = [c for c in res.contrasts if c.study == "THAL-1"]
    assert (row.treat, row.control) == ("thalidomide", NO_MAINTENANCE)
    assert control not in res.treatments and "THAL-1" not in dict(net.dropped)


def test_an_arms_entry_that_would_reverse_the_hr_is_refused(network_evidence: Any,
                                                            tmp_path: Path) -> None:
    """The stored HR is the maintenance arm's against its control. "treatment = no
    maintenance, control = thalidomide" entered THAL-1's 0.60 as thalidomide's 1.67 without
    a word; an entry whose treatment is not the trial's drug is refused the same way."""
    path = _arms_file(tmp_path, '[[arms]]\ntrial = "THAL-1"\ntreatment = "no maintenance"\n'
                                'control = "thalidomide"\n'
                                '[[arms]]\ntrial = "THAL-2"\ntreatment = "placebo"\n'
                                'control = "thalidomide"\n'
                                '[[arms]]\ntrial = "LEN-1"\ntreatment = "thalidomide"\n'
                                'control = "no maintenance"\n')
    net, res, _ = _fit(network_evidence, "PFS/post_asct", path)
    assert not {"THAL-1", "THAL-2", "LEN-1"} & {c.study for c in res.contrasts}
    dropped = dict(net.dropped)
    assert dropped["THAL-1"] == (
        "its [[arms]] entry gives treatment 'no maintenance' (no maintenance agent) and "
        "control 'thalidomide', but the stored HR is the maintenance arm's against its "
        "control, so it would enter reversed: swap them in MMLR_ANALYSES_FILE")
    assert "treatment 'placebo' (no maintenance agent)" in dropped["THAL-2"]
    assert dropped["LEN-1"].startswith("its [[arms]] treatment 'thalidomide' does not name "
                                       "the trial's drug (lenalidomide)")
    # the right way round, the entry stands
    path.write_text('[[arms]]\ntrial = "THAL-1"\ntreatment = "thalidomide"\n'
                    'control = "no maintenance"\n', encoding="utf-8")
    _, res, _ = _fit(network_evidence, "PFS/post_asct", path)
    (row,) = [c for c in res.contrasts if c.study == "THAL-1"]
    assert (row.treat, row.control) == ("thalidomide", NO_MAINTENANCE)
    assert row.log_hr == pytest.approx(math.log(0.60))


THREE_ARMS = """
[[arms]]
trial = "GEM-3"
comparison = "VT vs IFN"
treatment = "bortezomib+thalidomide"
control = "interferon"

[[arms]]
trial = "GEM-3"
comparison = "T vs IFN"
treatment = "thalidomide"
control = "interferon"
"""


def test_a_multi_arm_trial_enters_with_each_comparison_its_arms_map(
        network_evidence: Any, tmp_path: Path) -> None:
    with network_evidence.sessions() as s:
        gem = _trial(s, "GEM-3", "thalidomide", "interferon-alpha")
        add_estimate(s, gem, "0.70", "0.52", "0.94", comparison="VT vs IFN", year=2010)
        add_estimate(s, gem, "0.62", "0.45", "0.86", comparison="VT vs IFN", year=2012)
        t_ifn = add_estimate(s, gem, "0.85", "0.63", "1.15", comparison="T vs IFN")
        vt_t = add_estimate(s, gem, "0.80", "0.60", "1.07", comparison="VT vs T")
        s.commit()
        later_id = t_ifn.id - 1  # the later of the two VT vs IFN cuts
    # without entries, rule 4 keeps the trial's first named comparison only
    net, res, _ = _fit(network_evidence, "PFS/post_asct")
    assert [c.estimate_id for c in res.contrasts if c.study == "GEM-3"] == [later_id]
    assert "bortezomib+thalidomide" not in res.treatments
    # with them, both mapped comparisons enter (latest cut each) as one three-arm trial
    net, res, why = _fit(network_evidence, "PFS/post_asct", _arms_file(tmp_path, THREE_ARMS))
    assert why == ""
    rows = [c for c in res.contrasts if c.study == "GEM-3"]
    assert sorted(c.estimate_id for c in rows) == [later_id, t_ifn.id]
    assert {a.comparison for a in net.arms if a.trial == "GEM-3"} == {"VT vs IFN", "T vs IFN"}
    dropped = dict(net.dropped)
    assert "has no [[arms]] entry" in dropped[f"GEM-3, estimate {vt_t.id}"]
    assert "superseded" in dropped[f"GEM-3, estimate {later_id - 1}"]
    # the shared interferon arm is counted once: the fit is not that of two separate trials
    two_trials = network_meta_analysis(
        [c if c.study != "GEM-3" or c.treat == "thalidomide"
         else Contrast("GEM-3b", c.treat, c.control, c.log_hr, c.se) for c in res.contrasts],
        reference=NO_MAINTENANCE)
    vt = res.relative("bortezomib+thalidomide", "thalidomide")
    assert vt.se != pytest.approx(two_trials.relative("bortezomib+thalidomide",
                                                      "thalidomide").se, rel=1e-3)
    assert res.splits[0].approximate  # back-calculation with a multi-arm trial


def test_multi_arm_entries_that_share_no_arm_leave_the_trial_out(
        network_evidence: Any, tmp_path: Path) -> None:
    with network_evidence.sessions() as s:
        gem = _trial(s, "GEM-3", "thalidomide", "interferon-alpha")
        add_estimate(s, gem, "0.70", "0.52", "0.94", comparison="VT vs IFN")
        add_estimate(s, gem, "0.85", "0.63", "1.15", comparison="T vs P")
        s.commit()
    text = THREE_ARMS.replace('"T vs IFN"', '"T vs P"').replace(
        'treatment = "thalidomide"\ncontrol = "interferon"', 'treatment = "thalidomide"\n'
        'control = "prednisone"')
    net, res, _ = _fit(network_evidence, "PFS/post_asct", _arms_file(tmp_path, text))
    assert "GEM-3" not in {c.study for c in res.contrasts}
    assert "sharing one arm" in dict(net.dropped)["GEM-3"]


def test_a_trial_entered_by_stratum_is_two_studies_in_all_settings(ctx: Any) -> None:
    with ctx.sessions() as s:
        mrc = _trial(s, "MRC IX", "thalidomide", "no maintenance", setting="mixed")
        add_estimate(s, mrc, "0.70", "0.60", "0.82", setting="post_asct")
        add_estimate(s, mrc, "0.80", "0.66", "0.97", setting="non_transplant")
        add_estimate(s, _trial(s, "LEN-1", "lenalidomide", "placebo"), "0.5", "0.4", "0.63")
        add_estimate(s, _trial(s, "LEN-TH", "lenalidomide", "thalidomide"),
                     "0.8", "0.6", "1.07")
        s.commit()
    _, res, _ = _fit(ctx, "PFS/all")
    studies = sorted(c.study for c in res.contrasts)
    assert studies == ["LEN-1", "LEN-TH", "MRC IX (non-transplant)", "MRC IX (post-ASCT)"]


def test_two_treatments_are_not_a_network(ctx: Any) -> None:
    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "LEN-1", "lenalidomide", "placebo"), "0.5", "0.4", "0.63")
        s.commit()
    _net, res, why = _fit(ctx, "PFS/post_asct")
    assert res is None and "nothing beyond the pairwise analyses" in why


# ----------------------------------------------------------------------------- web, API, CLI
def test_the_page_shows_the_network_escaped_for_every_role(
        network_evidence: Any, app: Any, users: dict[str, str]) -> None:
    viewer = as_role(app, users, "viewer")
    page = viewer.get("/network?key=PFS/post_asct")
    assert page.status_code == 200
    html = page.text
    assert XSS not in html and "&lt;script&gt;alert(" in html
    assert "<svg" in html and 'role="img"' in html
    assert 'data-treatment="lenalidomide"' in html and "95% prediction interval" in html
    assert "League table" in html and "Direct and indirect evidence" in html
    # lenalidomide's row: vs no maintenance and vs interferon the CI excludes 1 (bold), vs
    # thalidomide it does not
    league = html[html.index('class="league"'):]
    row = league[league.index('<th scope="row">lenalidomide</th>'):]
    row = row[:row.index("</tr>")]
    cells = re.findall(r'<td class="(num[^"]*)">([^<]*)(?:<span[^>]*>([^<]*)</span>)?</td>', row)
    bold = {cell for cls, cell, _ in cells if "excludes-one" in cls}
    assert len(cells) == 3 and len(bold) == 2
    # bold is not the only carrier: a screen reader hears it too
    assert all(said == " (CI excludes 1)" for cls, _, said in cells if "excludes-one" in cls)
    plain = next(cell for cls, cell, _ in cells if "excludes-one" not in cls)
    lo, hi = (float(x) for x in re.findall(r"\d+\.\d+", plain)[1:])
    assert lo < 1 < hi
    assert "not verified" in html and "both arms read as" in html
    # the default is the first fitted network; an unknown key is a 404 page, not a traceback
    assert viewer.get("/network").status_code == 200
    missing = viewer.get("/network?key=PFS/nowhere")
    assert missing.status_code == 404 and "no network" in missing.text
    svg = viewer.get("/network.svg?key=PFS/post_asct")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert XSS not in svg.text
    assert viewer.get("/network.svg?key=OS/all").status_code == 404  # no OS data
    forest = viewer.get("/network-forest.svg?key=PFS/post_asct")
    assert forest.headers["content-type"].startswith("image/svg+xml")
    assert "mmlr-network-forest-PFS-post_asct.svg" in forest.headers["content-disposition"]
    assert "lenalidomide vs no maintenance: HR" in forest.text
    assert html.count("<svg") == 2  # the network plot and the forest plot, inline
    assert viewer.get("/network-forest.svg?key=nope").status_code == 404


def test_the_trials_table_shows_each_hr_as_printed_not_rebuilt_from_its_se(
        network_evidence: Any, app: Any, users: dict[str, str]) -> None:
    """A printed CI is seldom symmetric on the log scale once rounded: rebuilt from the SE,
    0.60 (0.45–0.85) read 0.60 (0.44–0.82) here while every other page printed the paper's."""
    with network_evidence.sessions() as s:
        add_estimate(s, _trial(s, "ASYM-1", "lenalidomide", "placebo"), "0.60", "0.45", "0.85")
        s.commit()
    net, _, _ = _fit(network_evidence, "PFS/post_asct")
    row = next(c for c in net.contrasts if c.study == "ASYM-1")
    assert row.hr_text == "0.60 (0.45–0.85)"
    assert row.flipped().hr_text == hr_ci_text(1 / 0.6, *sorted(  # a flipped row is rebuilt
        math.exp(-row.log_hr + z * 1.959963984540054 * row.se) for z in (-1, 1)))
    html = as_role(app, users, "viewer").get("/network?key=PFS/post_asct").text
    arms = html[html.index('class="network-arms"'):]
    arms = arms[arms.index("ASYM-1"):]
    assert '<td class="num">0.60 (0.45–0.85)</td>' in arms[:arms.index("</tr>")]


def test_the_page_needs_a_login(network_evidence: Any, client: Any) -> None:
    response = client.get("/network", follow_redirects=False)
    assert response.status_code in (302, 303) and "/login" in response.headers["location"]


def test_the_api_gives_every_network(network_evidence: Any, app: Any,
                                     users: dict[str, str]) -> None:
    data = api_as(app, users, "viewer").get("/api/network").json()
    nets = {n["key"]: n for n in data["networks"]}
    assert data["method"] == "REML"
    post = nets["PFS/post_asct"]
    assert post["fitted"] and post["reference"] == NO_MAINTENANCE
    pairs = {(r["treat"], r["control"]) for r in post["league"]}
    assert ("lenalidomide", "thalidomide") in pairs and ("thalidomide", "lenalidomide") in pairs
    assert sum(r["p_score"] for r in post["ranking"]) == pytest.approx(len(post["treatments"]) / 2)
    for r in post["versus_reference"]:  # the prediction interval contains the CI
        assert r["pi_low"] <= r["ci_low"] < r["ci_high"] <= r["pi_high"]
    assert nets["PFS/post_asct/with_strategy"]["include_strategy"] is True
    assert api_as(app, users, "viewer").get("/api/network",
                                            headers={"Authorization": ""}).status_code == 401


def test_the_cli_prints_and_exports_networks(network_evidence: Any, settings: Any) -> None:
    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.database_url)
    text = run_cli("network", "--key", "PFS/post_asct", env=env)
    assert text.returncode == 0, text.stderr
    assert "lenalidomide" in text.stdout and "HR vs no maintenance" in text.stdout
    data = json.loads(run_cli("network", "--json", env=env).stdout)
    assert {n["key"] for n in data["networks"]} >= {"PFS/post_asct", "PFS/all"}
    assert_one_line_error(run_cli("network", "--key", "OS/x", env=env), "no network 'OS/x'")


def test_a_broken_arms_file_is_one_line_on_the_cli(ctx: Any, settings: Any,
                                                   tmp_path: Path) -> None:
    path = _arms_file(tmp_path, '[[arms]]\ntrial = "A"\n')
    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.database_url,
                  MMLR_ANALYSES_FILE=str(path))
    assert_one_line_error(run_cli("network", env=env), "arms 1: missing control, treatment")


def test_an_arms_entry_naming_no_stored_trial_is_said_not_ignored(
        network_evidence: Any, app: Any, users: dict[str, str], settings: Any,
        tmp_path: Path) -> None:
    """A misspelt trial in [[arms]] is an entry that changes nothing: the networks stand as
    they are, and the command and the page name it (a trial stored without verified estimates
    yet is not misspelt)."""
    with network_evidence.sessions() as s:
        _trial(s, "NEW-TRIAL", "lenalidomide", "placebo")  # stored, no estimate yet
        s.commit()
    path = _arms_file(tmp_path, "".join(
        f'[[arms]]\ntrial = "{name}"\ntreatment = "thalidomide"\ncontrol = "placebo"\n'
        for name in ("THAL-1", "THAL-l", "NEW-TRIAL", "Thal 2")))
    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.database_url,
                  MMLR_ANALYSES_FILE=str(path))
    text = run_cli("network", env=env)
    assert text.returncode == 0 and "HR vs no maintenance" in text.stdout
    assert text.stderr.splitlines() == [
        "mmlr: warning: [[arms]] in MMLR_ANALYSES_FILE name no stored trial: 'thal 2', "
        "'thal-l' (check the spelling against the trials' names on /trials; those entries "
        "change nothing)"]
    data = json.loads(run_cli("network", "--json", env=env).stdout)
    assert data["arms_naming_no_trial"] == ["thal 2", "thal-l"]
    app.state.settings = app.state.settings.model_copy(update={"analyses_file": path})
    page = as_role(app, users, "viewer").get("/network")
    assert page.status_code == 200
    assert "name no stored trial: “thal 2”, “thal-l”." in page.text
    app.state.settings = app.state.settings.model_copy(update={"analyses_file": None})
    assert "no stored trial" not in as_role(app, users, "viewer").get("/network").text
    assert json.loads(run_cli("network", "--json", env=cli_env(
        MMLR_DATA_DIR=str(settings.data_dir),
        MMLR_DATABASE_URL=settings.database_url)).stdout)["arms_naming_no_trial"] == []


def test_the_network_files_are_checked_before_the_metafor_export_writes_any(
        network_evidence: Any, tmp_path: Path) -> None:
    from reports.export_metafor import write_metafor_export
    from reports.pool import pool_all

    pool_all(network_evidence)
    out = tmp_path / "out"
    (out / "mmlr-network.R").mkdir(parents=True)
    with pytest.raises(MmlrError, match=r"mmlr-network.R: it is a folder, not a regular file"):
        write_metafor_export(network_evidence, out)
    assert sorted(p.name for p in out.iterdir()) == ["mmlr-network.R"]  # nothing half-written
    (out / "mmlr-network.R").rmdir()
    assert [p.name for p in write_metafor_export(network_evidence, out)] == [
        "mmlr-metafor.csv", "mmlr-metafor.R", "mmlr-network.csv", "mmlr-network.R"]


def test_the_network_inputs_carry_trial_names_as_typed(ctx: Any, tmp_path: Path) -> None:
    """mmlr-network.csv is R's input, not a spreadsheet's: a trial named "-1" or "=B" reached
    R as "'-1" and "'=B" (the apostrophe of the spreadsheet guard)."""
    from reports.export_metafor import write_metafor_export
    from reports.pool import pool_all

    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "-1", "thalidomide", "placebo"), "0.60", "0.45", "0.80")
        add_estimate(s, _trial(s, "=B", "lenalidomide", "placebo"), "0.50", "0.40", "0.63")
        add_estimate(s, _trial(s, "@C", "thalidomide", "lenalidomide"), "1.10", "0.80", "1.50")
        s.commit()
    pool_all(ctx)
    write_metafor_export(ctx, tmp_path)
    with (tmp_path / "mmlr-network.csv").open(newline="", encoding="utf-8") as fh:
        studies = {row["study"] for row in csv.DictReader(fh)}
    assert studies == {"-1", "=B", "@C"}


# ----------------------------------------------------------------------------- digest
def test_a_network_inconsistent_from_its_first_fit_says_so_in_its_first_digest(
        ctx: Any) -> None:
    """Lenalidomide and thalidomide against no maintenance and head to head, the head-to-head
    trials far from what the others imply: the network disagrees from its first fit, so it
    never "starts" disagreeing; its first digest said only "Fitted for the first time". And a
    p below 0.001 reads "p < 0.001" there and in ``mmlr network``, as on the page."""
    from reports.network_inputs import describe

    with ctx.sessions() as s:
        for i, ci in enumerate([("0.50", "0.42", "0.60"), ("0.55", "0.45", "0.67")]):
            add_estimate(s, _trial(s, f"LEN-{i}", "lenalidomide", "placebo"), *ci)
        for i, ci in enumerate([("0.95", "0.80", "1.13"), ("1.00", "0.84", "1.19")]):
            add_estimate(s, _trial(s, f"THAL-{i}", "thalidomide", "observation"), *ci)
        for i, ci in enumerate([("1.60", "1.30", "1.97"), ("1.50", "1.20", "1.88")]):
            add_estimate(s, _trial(s, f"HEAD-{i}", "lenalidomide", "thalidomide"), *ci)
        s.commit()
        items = networks_for(load_candidates(s), None)
    res = next(r for net, r, _ in items if net.key == "PFS/post_asct")
    assert res is not None and res.q_between.p is not None and res.q_between.p < 0.001
    digest = build_digest(ctx)
    lines = {n["key"]: n["lines"] for n in digest.summary["network_changes"]}
    assert lines["PFS/post_asct"][0].startswith("Fitted for the first time: 6 trials")
    assert "Direct and indirect evidence disagree (p < 0.001)." in lines["PFS/post_asct"]
    assert "Direct and indirect evidence disagree (p &lt; 0.001)." in digest.html
    assert "p = 0.000" not in digest.text and "p = 0.000" not in describe(items)
    assert ", p < 0.001" in describe(items)


def test_the_digest_says_what_changed_in_the_network(network_evidence: Any) -> None:
    ctx = network_evidence
    first = build_digest(ctx)
    changes = {n["key"]: n for n in first.summary["network_changes"]}
    assert changes["PFS/post_asct"]["lines"][0].startswith("Fitted for the first time: 6 trials")
    assert 'id="networks"' in first.html and "NETWORK META-ANALYSIS" in first.text
    assert XSS not in first.html
    # which way the network's HRs point, in the plain-text part as in the HTML
    direction = "HR < 1 favours the treatment named first."
    assert direction in first.text[first.text.index("NETWORK META-ANALYSIS"):]
    assert direction.replace("<", "&lt;") in first.html

    with ctx.sessions() as s:  # a large lenalidomide-vs-thalidomide trial joins the loop
        add_estimate(s, _trial(s, "LEN-THAL", "lenalidomide", "thalidomide"),
                     "0.40", "0.30", "0.53")
        s.commit()
    second = build_digest(ctx)
    assert second.id != first.id
    lines = {n["key"]: n["lines"] for n in second.summary["network_changes"]}
    post = lines["PFS/post_asct"]
    assert "Trials: 6 → 7 (joined: LEN-THAL)." in post
    def hr(digest: Any) -> str:
        lo_hi = digest.summary["networks"]["PFS/post_asct"]["vs_reference"]["lenalidomide"]
        return hr_ci_text(*lo_hi)
    assert f"lenalidomide vs no maintenance: HR {hr(first)} → {hr(second)}." in post
    assert hr(first) != hr(second)
    # the new trial disagrees with the indirect evidence through placebo-controlled trials
    assert any(line.startswith("Direct and indirect evidence now disagree") for line in post)
    assert any(line.endswith("the CI now includes 1.") for line in post)
    # the text part: one line each, the label on its own line, no run-together lines
    text = second.text[second.text.index("NETWORK META-ANALYSIS"):]
    assert "\n* Trials: 6 → 7 (joined: LEN-THAL).\n" in text
    assert "\n  lenalidomide: HR vs no maintenance " in text
    assert re.search(r"\n\nPFS \(EFS/TTP accepted\) — post-ASCT( \(\S+\))?\n\* ", text)

    assert build_digest(ctx).id == second.id  # nothing changed: no new digest


def test_the_digest_says_the_network_cis_are_narrower_wald_intervals(
        network_evidence: Any) -> None:
    """Pairwise analyses pooled with the Hartung–Knapp CI beside network estimates with Wald
    CIs: the digest says which is which, so a network CI that excludes 1 is not read as the
    primary result changing."""
    from reports.digest import NETWORK_CI_NOTE
    from reports.pool import pool_all

    ctx = network_evidence
    pool_all(ctx)
    digest = build_digest(ctx)
    assert any(a["new"]["ci_method"] == "hksj" for a in digest.summary["analyses"]
               if a["new"] and a["new"]["k"] > 1)
    network_part = digest.text[digest.text.index("NETWORK META-ANALYSIS"):]
    assert NETWORK_CI_NOTE in network_part.split("\n\n")[0]
    assert digest.html.count(html.escape(NETWORK_CI_NOTE)) == 1


def test_the_metafor_export_refits_the_networks_in_r(network_evidence: Any, settings: Any,
                                                     tmp_path: Path, rscript: str) -> None:
    """`mmlr export metafor` writes the networks with an R script; run as shipped, metafor
    gives the page's numbers."""
    out = tmp_path / "export"
    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.database_url)
    proc = run_cli("pool", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("export", "metafor", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert (out / "mmlr-network.csv").exists() and (out / "mmlr-network.R").exists()
    r = subprocess.run([rscript, str(out / "mmlr-network.R")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "HR vs no maintenance" in r.stdout
    theirs: dict[tuple[str, str, str], float] = {}
    with (out / "mmlr-network-results.csv").open() as fh:
        for row in csv.DictReader(fh):
            theirs[(row["network"], row["what"], row["name"])] = float(row["value"])
    with network_evidence.sessions() as s:
        items = networks_for(load_candidates(s), None)
    fitted = [(net, res) for net, res, _ in items if res is not None]
    assert {net.key for net, _ in fitted} == {key for key, _, _ in theirs}
    for net, res in fitted:
        assert res.tau2 == pytest.approx(theirs[(net.key, "tau2", "")], abs=1e-5)
        for t in res.treatments[1:]:
            rel = res.relative(t, res.reference)
            assert rel.log_hr == pytest.approx(theirs[(net.key, "re_b", t)], abs=1e-5)
            assert rel.se == pytest.approx(theirs[(net.key, "re_se", t)], abs=1e-5)


def test_a_broken_arms_file_is_named_on_the_page(network_evidence: Any, app: Any,
                                                 users: dict[str, str], tmp_path: Path) -> None:
    path = _arms_file(tmp_path, '[[arms]]\ntrial = "A"\ntreatment = "x"\ncontrol = "x"\n')
    app.state.settings = app.state.settings.model_copy(update={"analyses_file": path})
    page = as_role(app, users, "viewer").get("/network")
    assert page.status_code == 500  # a configuration problem of the server, said in one line
    assert "arms 1 (A): treatment and control are both" in page.text
    assert "Traceback" not in page.text
    api = api_as(app, users, "viewer").get("/api/network")
    assert api.status_code == 500 and "treatment and control are both" in api.json()["error"]


def test_the_page_shows_the_network_over_the_digests(
        network_evidence: Any, app: Any, users: dict[str, str]) -> None:
    from reports.network_digest import history

    ctx = network_evidence
    first = build_digest(ctx)
    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "LEN-THAL", "lenalidomide", "thalidomide"),
                     "0.40", "0.30", "0.53")
        s.commit()
    second = build_digest(ctx)
    with ctx.sessions() as s:
        rows = history(s, "PFS/post_asct")
        assert history(s, "OS/all") == []
    assert [r["digest_id"] for r in rows] == [first.id, second.id]
    assert [r["studies"] for r in rows] == [6, 7]
    snap = second.summary["networks"]["PFS/post_asct"]["vs_reference"]["lenalidomide"]
    assert rows[1]["vs_reference"]["lenalidomide"] == hr_ci_text(*snap)
    page = as_role(app, users, "viewer").get("/network?key=PFS/post_asct").text
    over_time = page[page.index('id="over-time"'):]
    assert f"#{first.id}" in over_time and f"#{second.id}" in over_time
    assert rows[0]["vs_reference"]["lenalidomide"] in over_time


def test_hrs_against_another_reference_are_not_compared(
        ctx: Any, app: Any, users: dict[str, str]) -> None:
    """Without a no-maintenance arm the reference is the treatment in most contrasts
    (thalidomide); once a placebo-controlled trial joins it is no maintenance. The digest and
    the over-time tables never set an HR against thalidomide beside one against no
    maintenance as if one had moved to the other."""
    from reports.network_digest import changes

    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "BORT-THAL", "bortezomib", "thalidomide"),
                     "0.75", "0.62", "0.91")
        add_estimate(s, _trial(s, "THAL-IFN", "thalidomide", "interferon"),
                     "0.80", "0.63", "1.02")
        s.commit()
    first = build_digest(ctx)
    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "THAL-PBO", "thalidomide", "placebo"), "0.60", "0.45", "0.80")
        s.commit()
    second = build_digest(ctx)
    before = first.summary["networks"]["PFS/post_asct"]
    after = second.summary["networks"]["PFS/post_asct"]
    assert (before["reference"], after["reference"]) == ("thalidomide", NO_MAINTENANCE)
    listed = next(n for n in second.summary["network_changes"] if n["key"] == "PFS/post_asct")
    assert "The reference is now no maintenance, was thalidomide: HRs are not compared." \
        in listed["lines"]
    assert not any(" → " in line and line.startswith("bortezomib vs")
                   for line in listed["lines"])
    # The same references compare as before.
    (same,), _ = changes({"k": before}, {"k": {**before, "vs_reference": {
        "bortezomib": [0.5, 0.4, 0.6], "interferon": before["vs_reference"]["interferon"]}}})
    assert same["lines"] == ["bortezomib vs thalidomide: HR 0.75 (0.62–0.91) → "
                             "0.50 (0.40–0.60)."]
    page = as_role(app, users, "viewer").get("/network?key=PFS/post_asct").text
    tables = lxml.html.fromstring(page).xpath("//table[contains(@class, 'network-history')]")
    assert [t.get("data-reference") for t in tables] == ["thalidomide", NO_MAINTENANCE]
    old, new = (" ".join(t.xpath(".//caption")[0].text_content().split()) for t in tables)
    assert old.startswith("HR (95% CI) against thalidomide")
    assert new.startswith(f"HR (95% CI) against {NO_MAINTENANCE}")
    heads = [[th.text_content() for th in t.xpath(".//thead//th")] for t in tables]
    assert "thalidomide" not in heads[0] and "thalidomide" in heads[1]
    assert f"#{first.id}" in tables[0].text_content()
    assert f"#{second.id}" in tables[1].text_content()
    assert "0.75 (0.62–0.91)" in tables[0].text_content()
    assert "0.75 (0.62–0.91)" not in tables[1].text_content()


def test_the_cycle_names_the_networks(network_evidence: Any) -> None:
    from reports.network_inputs import brief

    with network_evidence.sessions() as s:
        items = networks_for(load_candidates(s), None)
    text = brief(items)
    first, *rest = text.splitlines()
    fitted = [net.key for net, res, _ in items if res is not None]
    assert first.startswith(f"{len(fitted)} network(s) fitted")
    assert [line.split(":")[0] for line in rest] == fitted
    post = next(line for line in rest if line.startswith("PFS/post_asct:"))
    assert "6 trials, 4 treatments; highest P-score lenalidomide" in post
    assert "HR vs no maintenance 0." in post
    assert brief([]) == "no network with three or more connected treatments yet"


def test_a_sensitivity_network_leaves_out_trials_at_high_risk_of_bias(
        network_evidence: Any, app: Any, users: dict[str, str], settings: Any) -> None:
    from sqlmodel import select

    from store.bias import add_assessment, validate_assessment
    from store.models import Trial, User

    make_user(app, "rob@example.org", "curator")
    with network_evidence.sessions() as s:
        user = s.exec(select(User).where(User.email == "rob@example.org")).one()
        len1 = s.exec(select(Trial).where(Trial.name == "LEN-1")).one()
        domains = {key: {"judgment": "low", "support": "fine"}
                   for key in ("randomization", "deviations", "missing_data", "measurement",
                               "reporting")}
        domains["missing_data"]["judgment"] = "high"
        add_assessment(s, trial=len1, user=user,
                       assessment=validate_assessment(endpoint="PFS", domains=domains))
        s.commit()
    with network_evidence.sessions() as s:
        all_trials = networks_for(load_candidates(s), None)
        sensitivity = networks_for(load_candidates(s), None, without_high_rob=True)
    net, res, _ = next(i for i in all_trials if i[0].key == "PFS/post_asct")
    assert {a.trial: a.risk_of_bias for a in net.arms}["LEN-1"] == "high"
    assert {a.trial: a.risk_of_bias for a in net.arms}["THAL-1"] is None  # not assessed
    s_net, s_res, _ = next(i for i in sensitivity if i[0].key == "PFS/post_asct")
    assert "LEN-1" not in {c.study for c in s_res.contrasts}
    assert {c.study for c in s_res.contrasts} == {c.study for c in res.contrasts} - {"LEN-1"}
    assert "high risk of bias" in dict(s_net.dropped)["LEN-1"]
    assert s_net.label.endswith("— without trials at high risk of bias")
    assert s_res.relative("lenalidomide", NO_MAINTENANCE).log_hr != pytest.approx(
        res.relative("lenalidomide", NO_MAINTENANCE).log_hr)

    viewer = as_role(app, users, "viewer")
    page = viewer.get("/network?key=PFS/post_asct").text
    assert 'class="rob rob-high"' in page and "not assessed" in page
    page = viewer.get("/network?key=PFS/post_asct&without_high_rob=true").text
    assert "Sensitivity: trials whose result is at high risk of bias" in page
    assert "left out of this sensitivity network" in page
    api = api_as(app, users, "viewer").get("/api/network?without_high_rob=true").json()
    assert api["without_high_rob"] is True
    post = next(n for n in api["networks"] if n["key"] == "PFS/post_asct")
    assert "LEN-1" not in {r["trial"] for r in post["inputs"]}
    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.database_url)
    data = json.loads(run_cli("network", "--json", "--without-high-rob", "--key",
                              "PFS/post_asct", env=env).stdout)
    assert data["without_high_rob"] is True
    assert "LEN-1" not in {r["trial"] for r in data["networks"][0]["inputs"]}


def test_the_summary_of_findings_lists_the_network_estimates(
        network_evidence: Any, app: Any, users: dict[str, str], settings: Any,
        tmp_path: Path) -> None:
    from reports.export_sof import network_rows, sof_markdown

    with network_evidence.sessions() as s:
        items = networks_for(load_candidates(s), None)
        markdown = sof_markdown(s, items)
    rows = network_rows(items)
    # primary networks only, best P-score first within each, reference left out
    assert {r["network"] for r in rows} == {net.key for net, res, _ in items
                                            if res is not None and not net.include_strategy}
    post = [r for r in rows if r["network"] == "PFS/post_asct"]
    assert post[0]["treatment"] == "lenalidomide"
    assert [r["p_score"] for r in post] == sorted((r["p_score"] for r in post), reverse=True)
    assert {r["treatment"]: r["trials"] for r in post}["lenalidomide"] == 2
    # a loop (thalidomide–interferon–observation–placebo): τ² is estimated, the PI is real
    assert all(r["hr_pi_low"] is not None and not r["pi_not_estimable"] for r in post)
    assert "## Network meta-analysis" in markdown
    assert "| lenalidomide vs no maintenance | 2 |" in markdown
    assert XSS not in markdown  # trial names are not in it; treatment names are escaped cells
    page = as_role(app, users, "viewer").get("/summary").text
    assert 'id="network"' in page and "lenalidomide vs no maintenance" in page
    assert "## Network meta-analysis" in as_role(app, users, "viewer").get("/summary.md").text
    env = cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.database_url)
    assert run_cli("pool", env=env).returncode == 0
    out = tmp_path / "sof"
    out.mkdir()
    proc = run_cli("export", "sof", "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "## Network meta-analysis" in (out / "sof.md").read_text()


def test_hazard_ratios_read_the_same_everywhere() -> None:
    from reports.network import hr_text, wald_ci

    # the pages' convention (reports.words): an en dash, as the pairwise analyses
    assert hr_text(math.log(0.54), math.log(0.45), math.log(0.65)) == "0.54 (0.45–0.65)"
    assert hr_text(math.log(0.5), math.log(0.004), math.log(60)) == "0.50 (0.004–60.00)"
    lo, hi = wald_ci(-0.5, 0.1)
    assert (lo, hi) == pytest.approx((-0.5 - 0.1959964, -0.5 + 0.1959964))
    row = Contrast("T", "a", "b", -0.5, 0.1)
    assert row.hr_text == hr_text(-0.5, lo, hi)
    res = network_meta_analysis([row, Contrast("U", "c", "b", -0.2, 0.2)], reference="b")
    split = res.splits[0]
    assert split.direct_text == res.relative(split.treat, split.control).hr_text
    assert split.indirect_text is None  # a star: no indirect path


def test_summary_says_a_prediction_interval_without_tau2_is_not_estimable(
        ctx: Any, app: Any, users: dict[str, str]) -> None:
    """A star of one trial per comparison (no loop): τ² cannot be estimated, the PI would be
    the CI. The summary says "not estimable" instead of showing it as if it were one."""
    from reports.export_sof import NOT_ESTIMABLE, network_rows, sof_markdown

    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "THAL-1", "thalidomide", "placebo"), "0.60", "0.45", "0.80")
        add_estimate(s, _trial(s, "LEN-1", "lenalidomide", "placebo"), "0.50", "0.40", "0.63")
        s.commit()
    with ctx.sessions() as s:
        items = networks_for(load_candidates(s), None)
        markdown = sof_markdown(s, items)
    primary = [res for net, res, _ in items
               if res is not None and not net.include_strategy and not net.without_high_rob]
    assert primary and all(r.method == "REML" and not r.tau2_estimable for r in primary)
    fitted = primary[0]
    rel = fitted.relative("lenalidomide", fitted.reference)
    assert (rel.pi_low, rel.pi_high) == (None, None)  # not the CI again, as it was
    data = api_as(app, users, "viewer").get("/api/network").json()
    fitted_json = [n for n in data["networks"] if n["fitted"]]
    assert fitted_json and all(not n["tau2_estimable"] for n in fitted_json)
    assert all(r[k] is None for n in fitted_json for r in n["versus_reference"] + n["league"]
               for k in ("pi_low", "pi_high", "hr_pi_low", "hr_pi_high"))
    rows = network_rows(items)
    assert rows and all(r["hr_pi_low"] is None and r["pi_not_estimable"] for r in rows)
    assert f"| {NOT_ESTIMABLE} |" in markdown
    page = as_role(app, users, "viewer").get("/summary").text
    cells = [" ".join(td.text_content().split()) for td in lxml.html.fromstring(page).xpath(
        "//table[contains(@class, 'network-summary')]//td[@class='pi']")]
    assert cells and set(cells) == {NOT_ESTIMABLE}


def _net(vs: dict[str, list[float]], best_p: float = 0.125) -> dict[str, Any]:
    return {"label": "PFS", "reference": "placebo", "studies": 3,
            "treatments": ["placebo", *vs], "vs_reference": vs, "best": next(iter(vs)),
            "best_p_score": best_p, "inconsistency_p": 0.5}


def test_a_network_hr_moves_in_the_digest_as_the_reader_sees_it() -> None:
    """The digest writes network HRs as every report does (half-up, two significant digits
    below 0.01) and lists a move only when the shown digits or the side of 1 change; a
    snapshot kept with two decimals (before 2026-12-02) compares the same way."""
    from reports.network_digest import changes

    legacy = {"PFS": _net({"lenalidomide": [0.54, 0.45, 0.65]})}
    same = {"PFS": _net({"lenalidomide": [0.5412, 0.4501, 0.6488]})}
    assert changes(legacy, same) == ([], 1)
    moved = {"PFS": _net({"lenalidomide": [0.5451, 0.4501, 1.004]})}
    (listed,), _ = changes(same, moved)
    assert listed["lines"] == ["lenalidomide vs placebo: HR 0.54 (0.45–0.65) → "
                               "0.55 (0.45–1.00); the CI now includes 1."]
    # 1.025 (0.789–1.332) is 1.03 (0.79–1.33) as the page writes it, not round()'s 1.02; a
    # bound of 0.0042 is 0.0042, not 0.00; the P-score half-up too (0.125 -> 0.13, where
    # format() says 0.12).
    first, _ = changes(None, {"PFS": _net({"ixazomib": [1.025, 0.789, 1.332],
                                          "x": [0.02, 0.0042, 0.09]})})
    assert [r["hr"] for r in first[0]["rows"]] == ["1.03 (0.79–1.33)", "0.02 (0.0042–0.09)"]
    ranked, _ = changes({"PFS": _net({"x": [0.5, 0.4, 0.6]})},
                        {"PFS": _net({"ixazomib": [0.5, 0.4, 0.6], "x": [0.5, 0.4, 0.6]})})
    assert "Highest P-score: x → ixazomib (0.13)." in ranked[0]["lines"]


def test_a_head_to_head_trial_is_in_the_network_only(network_evidence: Any,
                                                     tmp_path: Path) -> None:
    """HOVON-X compares thalidomide with interferon maintenance: not thalidomide vs control.
    The pairwise thalidomide analysis leaves it out with the reason (it pooled its 0.80 as
    if against no maintenance), the dose comparison too; the network keeps it. An add-on
    design stays in; an [[arms]] entry that reads the control as placebo puts it back."""
    from reports.pool import pool_all
    from reports.selection import uses_of_estimates
    from store.context import make_context

    with network_evidence.sessions() as s:
        add_estimate(s, _trial(s, "ADD-ON", "thalidomide", "interferon-alpha",
                               regimen="thalidomide + interferon-alpha"),
                     "0.55", "0.36", "0.86")
        s.commit()
    key = "thalidomide/PFS/post_asct"
    outcome = next(o for o in pool_all(network_evidence).outcomes if o.analysis.key == key)
    assert [r["trial"] for r in outcome.inputs] == ["ADD-ON", "THAL-1", "THAL-2"]
    dropped = {d["trial"]: d["reason"] for d in outcome.extras["dropped"]}
    assert dropped["HOVON-X"] == (
        "head-to-head trial: the control arm receives maintenance too (interferon, read "
        "from the comparator 'interferon-alpha'; an [[arms]] entry in MMLR_ANALYSES_FILE "
        "corrects the reading), so it is not maintenance vs control; it enters the network "
        "meta-analysis only")
    assert "(thalidomide, read from the comparator 'thalidomide 50 mg'" in dropped["DOSE-1"]
    # the strategy twin of bortezomib: STRAT-1 is bortezomib vs thalidomide maintenance
    twin = next(o for o in pool_all(network_evidence).outcomes
                if o.analysis.key == "bortezomib/PFS/post_asct/with_strategy")
    assert twin.inputs == [] and "head-to-head" in twin.extras["dropped"][0]["reason"]
    net, _, _ = _fit(network_evidence, "PFS/post_asct")
    assert "HOVON-X" in [a.trial for a in net.arms]
    with network_evidence.sessions() as s:
        hovon = next(c for c in load_candidates(s) if c.trial_name == "HOVON-X")
        uses = uses_of_estimates(s, {hovon.estimate_id})[hovon.estimate_id]
    assert [u.label for u in uses] == ["PFS post-ASCT", "PFS all settings"]
    assert all((u.reason or "").startswith("head-to-head trial") for u in uses)

    path = tmp_path / "arms.toml"
    path.write_text('[[arms]]\ntrial = "HOVON-X"\ntreatment = "thalidomide"\n'
                    'control = "placebo"\n', encoding="utf-8")
    ctx = make_context(network_evidence.settings.model_copy(update={"analyses_file": path}))
    try:
        outcome = next(o for o in pool_all(ctx).outcomes if o.analysis.key == key)
        assert "HOVON-X" in [r["trial"] for r in outcome.inputs]
        with ctx.sessions() as s:
            uses = uses_of_estimates(s, {hovon.estimate_id}, path)[hovon.estimate_id]
        assert [u.reason for u in uses] == [None, None]
    finally:
        ctx.dispose()


def test_a_new_cut_left_unnamed_replaces_the_named_one_in_the_network_too(
        ctx: Any, tmp_path: Path) -> None:
    """A new data cut entered with the comparison left blank takes the trial's one named
    comparison (rule 4): the pooled analysis uses it. The network, where an [[arms]] entry
    maps that comparison, left it out as unmapped and used the superseded cut."""
    from datetime import date

    from reports.pool import pool_all
    from store.context import make_context

    with ctx.sessions() as s:
        trial = _trial(s, "MULTI", "thalidomide", "placebo; interferon")
        old = add_estimate(s, trial, "0.80", "0.64", "1.00", comparison="T vs placebo",
                           cut=date(2010, 1, 1))
        new = add_estimate(s, trial, "0.70", "0.56", "0.88", cut=date(2015, 1, 1))
        add_estimate(s, _trial(s, "LEN-1", "lenalidomide", "placebo"), "0.50", "0.40", "0.63")
        add_estimate(s, _trial(s, "IFN-1", "interferon", "no maintenance"),
                     "0.85", "0.70", "1.03")
        s.commit()
    path = tmp_path / "arms.toml"
    path.write_text('[[arms]]\ntrial = "MULTI"\ncomparison = "T versus placebo"\n'
                    'treatment = "thalidomide"\ncontrol = "placebo"\n', encoding="utf-8")
    net, _, _ = _fit(ctx, "PFS/post_asct", path)
    used = {c.study: c.estimate_id for c in net.contrasts}
    assert used["MULTI"] == new.id
    assert (f"MULTI, estimate {old.id}", f"superseded by estimate {new.id} (latest verified "
            "data cut)") in net.dropped
    (arms,) = [a for a in net.arms if a.trial == "MULTI"]
    assert (arms.treatment, arms.control, arms.comparison) == (
        "thalidomide", NO_MAINTENANCE, "T vs placebo")
    # the pooled analysis chooses the same estimate
    pooled = make_context(ctx.settings.model_copy(update={"analyses_file": path}))
    try:
        out = {o.analysis.key: o for o in pool_all(pooled).outcomes}
        assert [r["estimate_id"] for r in out["thalidomide/PFS/post_asct"].inputs] == [new.id]
    finally:
        pooled.dispose()


def test_a_league_cell_next_to_1_keeps_its_side() -> None:
    """The league table sets a cell in bold on the computed limits (CI excludes 1): an upper
    limit of 0.9996 was written "1.00" in a bold cell."""
    from reports.network import hr_text

    assert hr_text(math.log(0.9), math.log(0.8), math.log(0.9996)) == "0.90 (0.80–0.9996)"


def test_a_multi_arm_covariance_is_capped_at_the_smaller_contrast_variance() -> None:
    """Trial GEM's B vs P has four times the SE of its A vs P: correlation ½ gave them a
    covariance of 0.02, twice A vs P's whole variance 0.01 (impossible: it is the shared arm's
    variance, part of both). It is capped at 0.01, the fit notes name the trial, and the fit
    is the generalised least squares one with that covariance. In the common-effect fit the
    trial's B vs P then takes no Rücker weight (its A arm is taken as exactly known): the
    notes say so, and that B vs P has no direct row, instead of it vanishing silently."""
    rows = [Contrast("GEM", "A", "P", -0.5, 0.10), Contrast("GEM", "B", "P", -0.3, 0.40),
            Contrast("s2", "A", "P", -0.1, 0.10), Contrast("s3", "C", "P", -0.2, 0.2)]
    res = network_meta_analysis(rows, reference="P", method="FE")
    capped = [n for n in res.notes if n.startswith("trial GEM: the SE of B vs P (0.4)")]
    assert len(capped) == 1 and "capped at that variance (0.01)" in capped[0]
    # GLS by hand with the capped covariance: B vs P = (B vs A of GEM) + pooled A vs P
    y = np.array([-0.5, -0.3, -0.1, -0.2])
    x = np.array([[1.0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]])
    v = np.diag([0.01, 0.16, 0.01, 0.04])
    v[0, 1] = v[1, 0] = 0.01
    w = np.linalg.inv(v)
    beta = np.linalg.solve(x.T @ w @ x, x.T @ w @ y)
    assert res.relative("B", "P").log_hr == pytest.approx(beta[1])
    assert res.relative("B", "P").log_hr == pytest.approx(-0.1)
    assert ("B", "P") not in {(s.treat, s.control) for s in res.splits}
    assert any(n.startswith("trial GEM: its B vs P takes no weight of its own")
               and "no other trial compares B with P, so the pair has no row there" in n
               for n in res.notes)
    # SEs within a factor of two: correlation ½ as before, no note
    rows[1] = Contrast("GEM", "B", "P", -0.3, 0.15)
    assert not any("capped" in n for n in network_meta_analysis(rows, reference="P").notes)


def test_a_pair_dropped_for_its_rucker_weight_is_noted_beside_other_trials_of_it() -> None:
    """SEs exactly twofold (0.1, 0.2) sit at the cap: GEM's B vs P takes no weight; s4 also
    compares B with P, so the pair keeps its row (s4 alone) and the note says only the
    first part."""
    rows = [Contrast("GEM", "A", "P", -0.5, 0.10), Contrast("GEM", "B", "P", -0.3, 0.20),
            Contrast("s2", "A", "P", -0.1, 0.10), Contrast("s4", "B", "P", -0.2, 0.3)]
    res = network_meta_analysis(rows, reference="P", method="FE")
    bp = {(s.treat, s.control): s for s in res.splits}[("B", "P")]
    assert bp.k_direct == 1 and bp.direct == pytest.approx(-0.2)
    note = next(n for n in res.notes if n.startswith("trial GEM: its B vs P takes no weight"))
    assert "no row there" not in note


def _heterogeneous_but_consistent() -> list[tuple[str, str, str, float]]:
    """Trials of lenalidomide and thalidomide against placebo scattered around consistent
    effects (d_len −0.4, d_thal −0.2) and one head-to-head trial: (trial, drug, comparator,
    log HR), SE 0.12 (0.15 head to head)."""
    return [("A1", "lenalidomide", "placebo", -0.9), ("A2", "lenalidomide", "placebo", 0.05),
            ("A3", "lenalidomide", "placebo", -0.45), ("B1", "thalidomide", "placebo", -0.6),
            ("B2", "thalidomide", "placebo", 0.25),
            ("AB1", "lenalidomide", "thalidomide", -0.75)]


def test_heterogeneity_within_designs_is_not_read_as_inconsistency() -> None:
    """The common-effect Q between designs takes every trial as exact: 7.01 (p 0.008) here,
    though each node-split gives p 0.46. A random-effects network is judged on Krahn's
    random-effects version, with τ² of the design-by-treatment interaction model (0.2566):
    Q 0.479, p 0.489 (metafor agrees on random networks: test_network_metafor)."""
    rows = [Contrast(t, a, b, y, 0.15 if t == "AB1" else 0.12)
            for t, a, b, y in _heterogeneous_but_consistent()]
    res = network_meta_analysis(rows, reference="placebo")
    assert res.q_between.q == pytest.approx(7.007, abs=1e-3) and res.q_between.p < 0.01
    assert res.q_between_random is not None and res.tau2_within_designs is not None
    assert res.tau2_within_designs == pytest.approx(0.2566, abs=1e-4)
    assert res.inconsistency is res.q_between_random
    assert res.inconsistency.q == pytest.approx(0.479, abs=1e-3)
    assert res.inconsistency.p == pytest.approx(0.489, abs=1e-3)
    assert all(s.p is not None and s.p > 0.4 for s in res.splits)
    assert res.to_json()["q_between_designs_random"]["df"] == 1
    # a common-effect network keeps the common-effect Q (it has no τ²)
    fe = network_meta_analysis(rows, reference="placebo", method="FE")
    assert fe.q_between_random is None and fe.inconsistency is fe.q_between


def test_the_page_and_digest_judge_a_random_effects_network_on_its_random_q(
        ctx: Any, app: Any, users: dict[str, str]) -> None:
    """The same trials stored: no "disagree" warning on the page and none in the first
    digest (both read the common-effect p 0.008 before); the page gives the common-effect
    value beside the random-effects one."""
    with ctx.sessions() as s:
        for name, drug, comparator, y in _heterogeneous_but_consistent():
            se = 0.15 if name == "AB1" else 0.12
            hr = [f"{math.exp(v):.3f}" for v in (y, y - 1.959964 * se, y + 1.959964 * se)]
            add_estimate(s, _trial(s, name, drug, comparator), *hr)
        s.commit()
    _net, res, _why = _fit(ctx, "PFS/post_asct")
    assert res is not None and res.q_between.p is not None and res.q_between.p < 0.05
    assert res.inconsistency.p is not None and res.inconsistency.p > 0.4
    page = as_role(app, users, "viewer").get("/network?key=PFS/post_asct").text
    assert 'id="inconsistent"' not in page
    q = page[page.index("between designs (inconsistency)"):]
    assert q.startswith(f"between designs (inconsistency) {res.inconsistency.q:.2f} on 1 df")
    assert "with the heterogeneity within designs taken into account" in q
    assert f"common-effect {res.q_between.q:.2f}" in q.split("</li>")[0]
    digest = build_digest(ctx)
    lines = {n["key"]: n["lines"] for n in digest.summary["network_changes"]}
    assert not any("disagree" in line for line in lines["PFS/post_asct"])
    assert digest.summary["networks"]["PFS/post_asct"]["inconsistency_model"] == "random"


def test_a_snapshot_judged_on_the_common_effect_q_does_not_stop_disagreeing_by_itself() -> None:
    """A digest kept before random-effects networks were judged on Krahn's random Q stored
    the common-effect p (0.008): the next one, on the random-effects p (0.49), must not say
    "no longer disagree" — nothing changed but the measure. The same measure still does."""
    from reports.network_digest import changes

    vs = {"lenalidomide": [0.6, 0.5, 0.7]}
    old = {**_net(vs), "inconsistency_p": 0.008}
    now = {**_net(vs), "inconsistency_p": 0.49, "inconsistency_model": "random"}
    listed, _ = changes({"k": old}, {"k": now})
    assert not any("disagree" in line for n in listed for line in n["lines"])
    listed, _ = changes({"k": {**old, "inconsistency_model": "random"}}, {"k": now})
    said = [line for n in listed for line in n["lines"]]
    assert said == ["Direct and indirect evidence no longer disagree."]


def test_treatments_not_connected_to_the_reference_are_named_in_the_summaries(
        ctx: Any, app: Any, users: dict[str, str]) -> None:
    """Bortezomib against interferon joins no trial against no maintenance: the network
    leaves it out. /summary, sof.md and the digest named none of it (the rows of the
    connected treatments only); they now say which treatments and trials are left out, and
    the digest says so again when they get connected."""
    from reports.export_sof import sof_markdown

    with ctx.sessions() as s:
        add_estimate(s, _trial(s, "THAL-1", "thalidomide", "placebo"), "0.60", "0.45", "0.80")
        add_estimate(s, _trial(s, "LEN-1", "lenalidomide", "placebo"), "0.50", "0.40", "0.63")
        add_estimate(s, _trial(s, "LEN-2", "lenalidomide", "thalidomide"), "0.80", "0.60",
                     "1.07")
        add_estimate(s, _trial(s, "HOVON-X", "bortezomib", "interferon"), "0.70", "0.55",
                     "0.89")
        s.commit()
    note = ("not connected to no maintenance, so not in this network: bortezomib, "
            "interferon (1 trial: HOVON-X)")
    _net, res, _why = _fit(ctx, "PFS/post_asct")
    assert res is not None and res.disconnection_note == note
    with ctx.sessions() as s:
        markdown = sof_markdown(s, networks_for(load_candidates(s), None))
    assert f": {note}" in markdown
    viewer = as_role(app, users, "viewer")
    page = lxml.html.fromstring(viewer.get("/summary").text)
    notes = [" ".join(li.text_content().split())
             for li in page.xpath("//ul[contains(@class, 'network-notes')]/li")]
    assert any(n.endswith(f": {note}") for n in notes)
    assert f": {note}" in viewer.get("/summary.md").text
    first = build_digest(ctx)
    lines = {n["key"]: n["lines"] for n in first.summary["network_changes"]}
    assert f"{note[0].upper()}{note[1:]}." in lines["PFS/post_asct"]
    with ctx.sessions() as s:  # interferon against observation connects both
        add_estimate(s, _trial(s, "IFN-1", "interferon", "observation"), "0.90", "0.70",
                     "1.16")
        s.commit()
    second = build_digest(ctx)
    lines = {n["key"]: n["lines"] for n in second.summary["network_changes"]}
    assert "Every treatment is now connected to no maintenance." in lines["PFS/post_asct"]
    assert not any("not connected" in line for line in lines["PFS/post_asct"])


def test_a_trial_swapped_for_another_is_told_in_the_digest() -> None:
    """CALGB leaves and GIMEMA joins: three trials before and after, the same HRs. The digest
    compared the count and said nothing; it names who joined and left, and a trial fitted
    with another estimate (a new data cut). A snapshot kept without its inputs is compared
    on the count, as before."""
    from reports.network_digest import changes, snapshot

    class Net:
        key, label = "PFS/post_asct", "PFS, post-ASCT"

    def fitted(rows: list[Contrast]) -> dict[str, Any]:
        return snapshot([(Net, network_meta_analysis(rows, reference="no maintenance"), "")])

    ifm = Contrast("IFM", "A", "no maintenance", -0.6, 0.1, estimate_id=1)
    calgb = Contrast("CALGB", "A", "no maintenance", -0.6, 0.1, estimate_id=2)
    gimema = Contrast("GIMEMA", "A", "no maintenance", -0.6, 0.1, estimate_id=3)
    mrc = Contrast("MRC", "B", "no maintenance", -0.3, 0.15, estimate_id=4)
    before, after = fitted([ifm, calgb, mrc]), fitted([ifm, gimema, mrc])
    (listed,), _ = changes(before, after)
    assert listed["lines"] == ["Trials: 3 → 3 (joined: GIMEMA; left: CALGB)."]
    recut = fitted([Contrast("IFM", "A", "no maintenance", -0.6, 0.1, estimate_id=9),
                    gimema, mrc])
    (listed,), _ = changes(after, recut)
    assert listed["lines"] == ["Fitted with another estimate: IFM."]
    old = {key: {k: v for k, v in net.items() if k != "inputs"} for key, net in before.items()}
    assert changes(old, after) == ([], 1)
