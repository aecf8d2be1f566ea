"""The network meta-analysis agrees with R metafor's ``rma.mv`` on seeded random networks.

The oracle is the R script ``mmlr export metafor`` ships (``reports.export_network``): one
Rscript call fits every network with metafor, building the design matrix, the within-trial
covariance of multi-arm trials, the design-by-treatment interaction model and the direct
pools from the treatment names on its own (contrasts are written as generated, some the
other way round). Compared: the common-effect and random-effects (REML, ``random = ~ comp |
study, rho = 1/2``) effects and SEs against the reference with their prediction intervals,
τ², Q, Q within designs and the direct estimates of each pair of arms a trial randomised
(a multi-arm trial's pairs of non-common arms derived in R from its contrasts and V).
``test_network.py`` runs the same script on a real export.
"""

from __future__ import annotations

import csv
import math
import subprocess

import numpy as np
import pytest

from reports.export_network import CSV_COLUMNS, R_SCRIPT
from reports.network import Contrast, NetworkResult, network_meta_analysis

TOL = 1e-6


def _random_network(rng: np.random.Generator) -> list[Contrast]:
    """3–6 treatments joined by a random spanning tree (connected), plus 0–7 more trials, a
    quarter of them three-arm; heterogeneity from none to large and, sometimes, inconsistency
    on one comparison. Some contrasts are entered the other way round."""
    names = [f"t{i}" for i in range(int(rng.integers(3, 7)))]
    d = {name: float(rng.normal(-0.2, 0.3)) for name in names}
    d[names[0]] = 0.0
    tau = float(rng.choice([0.0, 0.0, 0.05, 0.2, 0.5]))
    bias = float(rng.choice([0.0, 0.0, 0.4]))
    order = [str(t) for t in rng.permutation(names)]
    trials = [[order[int(rng.integers(0, i))], order[i]] for i in range(1, len(names))]
    for _ in range(int(rng.integers(0, 8))):
        k = 3 if rng.random() < 0.25 else 2
        trials.append([str(a) for a in rng.choice(names, size=k, replace=False)])
    rows: list[Contrast] = []
    for n, arms in enumerate(trials, start=1):
        base = arms[0]
        for arm in arms[1:]:
            se = float(rng.uniform(0.08, 0.45))
            y = d[arm] - d[base] + rng.normal(0, tau) + rng.normal(0, se)
            if {arm, base} == {names[1], names[-1]}:
                y += bias
            c = Contrast(f"s{n}", arm, base, float(y), se)
            rows.append(c if rng.random() < 0.7 else c.flipped())
    return rows


def make_networks(seed: int = 20261130) -> dict[str, list[Contrast]]:
    """Seeded random connected networks (``_random_network``), by name."""
    rng = np.random.default_rng(seed)
    return {f"net{n:02d}": _random_network(rng) for n in range(90)}


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory, rscript: str) -> dict:
    nets = make_networks()
    folder = tmp_path_factory.mktemp("network")
    inp, out, script = folder / "in.csv", folder / "out.csv", folder / "network.R"
    script.write_text(R_SCRIPT, encoding="utf-8")
    with inp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for name, rows in nets.items():
            for c in rows:
                w.writerow([name, name, c.study, c.treat, c.control, repr(c.log_hr),
                            repr(c.se), "", "t0", "REML"])
    proc = subprocess.run([rscript, str(script), str(inp), str(out)], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    ref: dict[tuple[str, str, str], float] = {}
    with out.open() as fh:
        for row in csv.DictReader(fh):
            value = math.nan if row["value"] == "NA" else float(row["value"])
            ref[(row["network"], row["what"], row["name"])] = value
    return {"nets": nets, "ref": ref}


def _close(ours: float, theirs: float, tol: float = TOL) -> bool:
    return abs(ours - theirs) <= tol * max(1.0, abs(theirs))


def _effects(res: NetworkResult) -> dict[str, tuple[float, float]]:
    return {t: (r.log_hr, r.se) for t in res.treatments[1:]
            for r in [res.relative(t, res.reference)]}


def test_networks_exercise_the_hard_cases() -> None:
    nets = make_networks()
    multi = sum(any(sum(c.study == s for c in rows) > 1 for s in {c.study for c in rows})
                for rows in nets.values())
    assert len(nets) >= 80 and multi >= 20


def test_effects_tau2_and_q_match_metafor(oracle: dict) -> None:
    nets, ref = oracle["nets"], oracle["ref"]
    bad: list[str] = []
    boundary = positive = inconsistent = unidentified = dbt_failed = dbt_heterogeneous = 0
    for name, rows in nets.items():
        fe = network_meta_analysis(rows, reference="t0", method="FE")
        re = network_meta_analysis(rows, reference="t0", method="REML")
        for model, res in (("fe", fe), ("re", re)):
            for t, (est, se) in _effects(res).items():
                b, b_se = ref[(name, f"{model}_b", t)], ref[(name, f"{model}_se", t)]
                if not (_close(est, b) and _close(se, b_se)):
                    bad.append(f"{name} {model} {t}: ours {est} ({se}), metafor {b} ({b_se})")
        their_tau2 = ref[(name, "tau2", "")]
        if math.isnan(their_tau2):  # metafor failed: only allowed where τ² is not identified
            assert re.q_total.df == 0 and re.tau2 == 0.0, name
            unidentified += 1
        elif not _close(re.tau2, their_tau2, 1e-5):
            bad.append(f"{name} tau2 {re.tau2} vs {their_tau2}")
        for t in re.treatments[1:]:
            rel = re.relative(t, re.reference)
            for ours, what in ((rel.pi_low, "re_pi_lb"), (rel.pi_high, "re_pi_ub")):
                if not re.tau2_estimable:  # metafor's interval is the CI there; we give none
                    assert ours is None, name
                    continue
                assert ours is not None
                if not _close(ours, ref[(name, what, t)], 1e-5):
                    bad.append(f"{name} {t} {what} {ours} vs {ref[(name, what, t)]}")
        for ours, what in ((fe.q_total.q, "qe"), (fe.q_within.q, "q_within")):
            if not _close(ours, ref[(name, what, "")]):
                bad.append(f"{name} {what} {ours} vs {ref[(name, what, '')]}")
        # Q between designs with the design-by-treatment interaction model's τ² (Krahn 2013)
        assert re.q_between_random is not None and re.tau2_within_designs is not None
        their_within = ref[(name, "tau2_within", "")]
        if math.isnan(their_within):  # metafor failed on the interaction model
            dbt_failed += 1
        else:
            if not _close(re.tau2_within_designs, their_within, 1e-5):
                bad.append(f"{name} tau2 within designs {re.tau2_within_designs} vs "
                           f"{their_within}")
            if not _close(re.q_between_random.q, ref[(name, "q_between_random", "")], 1e-5):
                bad.append(f"{name} Q between random {re.q_between_random.q} vs "
                           f"{ref[(name, 'q_between_random', '')]}")
            dbt_heterogeneous += re.tau2_within_designs > 0 and re.q_between.df > 0
        assert fe.q_total.df == ref[(name, "qe_df", "")]
        # every pair of arms a trial randomised, a multi-arm trial's pairs among them
        pooled = {key for (net, what, key) in ref if net == name and what == "direct"}
        if {"|".join(sorted((s.treat, s.control), reverse=True)) for s in re.splits} != pooled:
            bad.append(f"{name} direct pairs {[(s.treat, s.control) for s in re.splits]} vs "
                       f"{sorted(pooled)}")
        for split in re.splits:
            a, b = sorted((split.treat, split.control), reverse=True)
            sign = 1.0 if split.treat == a else -1.0
            if not _close(sign * split.direct, ref[(name, "direct", f"{a}|{b}")], 1e-5):
                bad.append(f"{name} direct {a}|{b} {sign * split.direct}")
            if not _close(split.direct_se, ref[(name, "direct_se", f"{a}|{b}")], 1e-5):
                bad.append(f"{name} direct_se {a}|{b} {split.direct_se}")
        boundary += re.tau2 == 0.0 and re.q_total.df > 0
        positive += re.tau2 > 0
        inconsistent += (re.q_between.p or 1.0) < 0.05
    assert not bad, f"{len(bad)} mismatches, first: " + "\n".join(bad[:12])
    assert boundary > 0 and positive > 0 and inconsistent > 0  # all regimes exercised
    assert unidentified < len(nets) // 5
    assert dbt_failed < len(nets) // 10 and dbt_heterogeneous >= 5


def test_p_scores_match_resampled_ranks() -> None:
    """P-scores equal the mean SUCRA of draws from the network's normal approximation
    (Rücker & Schwarzer 2015), here to Monte Carlo precision."""
    rows = make_networks()["net03"]
    res = network_meta_analysis(rows, reference="t0")
    rng = np.random.default_rng(1)
    draws = rng.multivariate_normal(res.basic, res.cov, size=200_000)
    effects = np.column_stack([np.zeros(len(draws)), draws])  # reference first
    ranks = effects.argsort(axis=1).argsort(axis=1)  # 0 = lowest HR = best
    n = len(res.treatments)
    for i, t in enumerate(res.treatments):
        sucra = float(np.mean((n - 1 - ranks[:, i]) / (n - 1)))
        assert math.isclose(res.p_scores[t], sucra, abs_tol=0.005), (t, res.p_scores[t], sucra)
