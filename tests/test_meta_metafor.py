"""Every estimator agrees with R metafor to 1e-6 on ≥ 200 seeded random meta-analyses.

One Rscript call (tests/r/oracle.R) fits all datasets with every method (REML, DL, PM, FE) and
every test (knha, adhoc, z); each field of ours is compared with metafor's:
estimate, SE, CI, p value, τ², I², H², Q, Q p, prediction interval and the Q-profile CI of τ².
"""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reports.meta import CI_METHODS, METAFOR_TEST, METHODS, meta_analysis

ORACLE = Path(__file__).parent / "r" / "oracle.R"
FIELDS = ("k", "estimate", "se", "ci_low", "ci_high", "pval", "tau2", "i2", "h2", "q", "q_p",
          "pi_low", "pi_high")
TOL = 1e-6


def make_datasets(seed: int = 20240611) -> dict[str, list[tuple[float, float]]]:
    """Seeded random meta-analyses of log HRs plus the edge cases, by name."""
    rng = np.random.default_rng(seed)
    data: dict[str, list[tuple[float, float]]] = {}
    # Edge cases, named so a failure says which one.
    data["k1"] = [(-0.35, 0.12)]
    data["k1_null"] = [(0.0, 0.3)]
    data["k2_close"] = [(-0.4, 0.15), (-0.35, 0.2)]
    data["k2_far"] = [(-0.9, 0.1), (0.3, 0.12)]
    data["identical_same_se"] = [(-0.3, 0.1)] * 4
    data["identical_diff_se"] = [(-0.3, 0.1), (-0.3, 0.2), (-0.3, 0.05)]
    data["boundary_tau0"] = [(-0.30, 0.2), (-0.31, 0.25), (-0.29, 0.3), (-0.305, 0.15)]
    data["extreme_het"] = [(-2.0, 0.05), (1.5, 0.05), (0.1, 0.04), (-0.8, 0.06), (2.2, 0.05)]
    data["extreme_het_k2"] = [(-1.5, 0.03), (1.5, 0.03)]
    data["tiny_se_mix"] = [(-0.5, 0.01), (-0.2, 0.5), (0.1, 0.9), (-0.45, 0.02)]
    data["seed_like"] = [(math.log(0.57), 0.1103), (math.log(0.47), 0.1682),
                         (math.log(0.55), 0.2216), (math.log(0.659), 0.0993)]
    n_random = 210
    for i in range(n_random):
        k = int(rng.choice([2, 3, 3, 4, 5, 6, 8, 10, 15, 25]))
        tau = float(rng.choice([0.0, 0.0, 0.05, 0.15, 0.3, 0.6, 1.2]))
        mu = float(rng.normal(-0.3, 0.3))
        sei = rng.uniform(0.04, 0.5, size=k)
        yi = mu + rng.normal(0, tau, size=k) + rng.normal(0, sei)
        data[f"random_{i:03d}"] = [(float(a), float(b)) for a, b in zip(yi, sei, strict=True)]
    return data


def write_datasets(datasets: dict[str, list[tuple[float, float]]], path: Path) -> None:
    """The oracles' input: one row per study (dataset, yi, sei), full precision."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "yi", "sei"])
        for name, rows in datasets.items():
            for yi, sei in rows:
                writer.writerow([name, repr(yi), repr(sei)])


@pytest.fixture
def reference(tmp_path: Path, rscript: str) -> dict:
    datasets = make_datasets()
    folder = tmp_path
    inp, out = folder / "in.csv", folder / "out.csv"
    write_datasets(datasets, inp)
    proc = subprocess.run([rscript, str(ORACLE), str(inp), str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ref = {}
    with out.open() as fh:
        for row in csv.DictReader(fh):
            ref[(row["dataset"], row["method"], row["test"])] = row
    return {"datasets": datasets, "ref": ref}


def _num(text: str) -> float:
    return float("nan") if text in ("", "NA") else float(text)


def _close(ours: float, theirs: float) -> bool:
    if math.isnan(theirs) or math.isnan(ours):
        return math.isnan(theirs) and math.isnan(ours)
    if math.isinf(theirs) or math.isinf(ours):
        return ours == theirs
    return abs(ours - theirs) <= TOL * max(1.0, abs(theirs))


def test_at_least_200_datasets_with_edge_cases() -> None:
    data = make_datasets()
    assert len(data) >= 200
    assert {"k1", "k2_close", "identical_same_se", "boundary_tau0", "extreme_het"} <= set(data)


def test_every_field_matches_metafor(reference: dict) -> None:
    datasets, ref = reference["datasets"], reference["ref"]
    mismatches: list[str] = []
    compared = 0
    boundary_hits = 0
    for name, rows in datasets.items():
        yi = [r[0] for r in rows]
        sei = [r[1] for r in rows]
        for method in METHODS:
            for ci in CI_METHODS:
                theirs = ref[(name, method, METAFOR_TEST[ci])]
                res = meta_analysis(yi, sei, method=method, ci=ci)
                for fld in FIELDS:
                    ours = float(getattr(res, fld))
                    if not _close(ours, _num(theirs[fld])):
                        mismatches.append(f"{name} {method} {ci} {fld}: ours {ours!r} "
                                          f"metafor {theirs[fld]}")
                    compared += 1
                lb, ub = _num(theirs["tau2_ci_low"]), _num(theirs["tau2_ci_high"])
                if not math.isnan(lb):
                    assert res.tau2_ci is not None, (name, method)
                    for ours, their in zip(res.tau2_ci, (lb, ub), strict=True):
                        if not _close(ours, their):
                            mismatches.append(f"{name} {method} {ci} tau2_ci: {res.tau2_ci} "
                                              f"vs {(lb, ub)}")
                    compared += 2
                if method != "FE" and res.k > 1 and res.tau2 == 0.0:
                    boundary_hits += 1
    assert not mismatches, f"{len(mismatches)} mismatches, first: " + "\n".join(mismatches[:15])
    assert compared > 200 * 12 * len(FIELDS)
    assert boundary_hits > 0  # the τ² = 0 boundary was really exercised
