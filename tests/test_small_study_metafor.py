"""Egger's test, the meta-regression on the SE and trim-and-fill agree with R metafor.

One Rscript call (tests/r/small_study.R) fits every dataset with every τ² estimator (REML, DL,
PM, FE) and every test (knha, adhoc, z): ``rma(yi, sei, mods = ~ sei)``, ``regtest(model =
"lm")`` and ``trimfill()``. Compared: both regression coefficients, their SEs, the slope's p
value and τ² (1e-6); Egger's t, p, df and limit estimate with its CI; trim-and-fill's side, k0,
the filled values, and the pooled fit of the augmented data with the same method and test.
"""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_meta_metafor import write_datasets

from reports.meta import METAFOR_TEST
from reports.small_study import _egger_design, egger_test, meta_regression, trim_and_fill

ORACLE = Path(__file__).parent / "r" / "small_study.R"
TOL = 1e-6
CI_OF_TEST = {test: ci for ci, test in METAFOR_TEST.items()}


def make_datasets(seed: int = 20261130) -> dict[str, list[tuple[float, float]]]:
    """Seeded funnels, half of them made asymmetric (small trials pushed towards benefit or
    harm), plus named edge cases."""
    rng = np.random.default_rng(seed)
    data: dict[str, list[tuple[float, float]]] = {
        "k3": [(-0.5, 0.1), (-0.9, 0.3), (-0.2, 0.2)],
        # Nearly symmetric (an exactly symmetric funnel's slope is rounding noise, whose sign
        # picks the side in metafor as in ours).
        "nearly_symmetric": [(-0.3 + d, s) for d, s in ((0, 0.05), (0.2, 0.2), (-0.19, 0.2),
                                                        (0.4, 0.4), (-0.42, 0.4))],
        # Equal log HRs: rank ties are broken by position, as R's ties.method = "first".
        "ties": [(-0.4, 0.1), (-0.4, 0.2), (-0.4, 0.3), (-0.9, 0.35), (-1.1, 0.4),
                 (-0.2, 0.12)],
        "benefit_asymmetry": [(-0.5 - 1.5 * s + 0.04 * (-1) ** i, s)
                              for i, s in enumerate((0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6,
                                                     0.7, 0.8))],
        "harm_asymmetry": [(-0.2 + 1.2 * s + 0.05 * (-1) ** i, s)
                           for i, s in enumerate((0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6))],
    }
    for i in range(60):
        k = int(rng.choice([3, 4, 5, 6, 8, 10, 12, 15, 20, 30]))
        tau = float(rng.choice([0.0, 0.05, 0.15, 0.3, 0.6]))
        sei = rng.uniform(0.04, 0.6, size=k)
        yi = rng.normal(-0.3, 0.2) + rng.normal(0, tau, size=k) + rng.normal(0, sei)
        if i % 2:  # publication bias: small trials without benefit go missing
            yi = yi - float(rng.choice([-1.0, 1.0])) * 1.5 * sei * (rng.uniform(size=k) < 0.7)
        data[f"random_{i:02d}"] = [(float(a), float(b)) for a, b in zip(yi, sei, strict=True)]
    return data


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, rscript: str) -> dict:
    datasets = make_datasets()
    folder = tmp_path_factory.mktemp("small_study")
    inp, out, aug = folder / "in.csv", folder / "out.csv", folder / "aug.csv"
    write_datasets(datasets, inp)
    proc = subprocess.run([rscript, str(ORACLE), str(inp), str(out), str(aug)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with out.open() as fh:
        fits = {(r["dataset"], r["method"], r["test"]): r for r in csv.DictReader(fh)}
    filled: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    with aug.open() as fh:
        for r in csv.DictReader(fh):
            if r["fill"] == "1":
                filled.setdefault((r["dataset"], r["method"], r["test"]), []).append(
                    (float(r["yi"]), float(r["sei"])))
    return {"datasets": datasets, "fits": fits, "filled": filled}


def _close(ours: float, theirs: str) -> bool:
    ref = float(theirs)
    return math.isclose(ours, ref, rel_tol=TOL, abs_tol=TOL)


def _split(rows: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [r[0] for r in rows], [r[1] for r in rows]


def test_every_case_was_fitted(reference: dict) -> None:
    assert len(reference["fits"]) == len(reference["datasets"]) * 4 * 3
    # The seeded data exercise both sides and both outcomes of the fill, or the comparison
    # below proves little.
    sides = {r["tf_side"] for r in reference["fits"].values()}
    k0s = {int(r["tf_k0"]) for r in reference["fits"].values()}
    assert sides == {"left", "right"}
    assert 0 in k0s and max(k0s) >= 3


def test_meta_regression_on_the_standard_error(reference: dict) -> None:
    bad = []
    for (name, method, test), ref in reference["fits"].items():
        yi, sei = _split(reference["datasets"][name])
        reg = meta_regression(yi, sei, _egger_design(np.array(sei)), method=method,
                              ci=CI_OF_TEST[test])
        ours = {"reg_b0": reg.coef[0], "reg_b1": reg.coef[1], "reg_se0": reg.se[0],
                "reg_se1": reg.se[1], "reg_p1": reg.pval[1], "reg_tau2": reg.tau2}
        bad += [(name, method, test, key, float(value), ref[key]) for key, value in ours.items()
                if not _close(float(value), ref[key])]
    assert not bad, bad[:10]


def test_egger_regression_test(reference: dict) -> None:
    bad = []
    for (name, method, test), ref in reference["fits"].items():
        if (method, test) != ("REML", "knha"):
            continue  # regtest(model = "lm") does not depend on the model's method and test
        egger = egger_test(*_split(reference["datasets"][name]))
        assert egger["df"] == int(ref["egger_df"])
        ours = {"egger_stat": egger["stat"], "egger_p": egger["p"],
                "egger_limit": egger["limit"], "egger_limit_low": egger["limit_ci_low"],
                "egger_limit_high": egger["limit_ci_high"]}
        bad += [(name, key, value, ref[key]) for key, value in ours.items()
                if not _close(value, ref[key])]
    assert not bad, bad[:10]


def test_trim_and_fill(reference: dict) -> None:
    bad = []
    for (name, method, test), ref in reference["fits"].items():
        yi, sei = _split(reference["datasets"][name])
        fill = trim_and_fill(yi, sei, method=method, ci=CI_OF_TEST[test])
        where = (name, method, test)
        assert (fill["side"], fill["k0"]) == (ref["tf_side"], int(ref["tf_k0"])), where
        assert fill["converged"], where
        theirs = sorted(reference["filled"].get(where, []))
        ours = sorted((f["yi"], f["sei"]) for f in fill["filled"])
        assert len(ours) == len(theirs) == fill["k0"], where
        assert all(math.isclose(a, c, abs_tol=TOL) and math.isclose(b, d, abs_tol=TOL)
                   for (a, b), (c, d) in zip(ours, theirs, strict=True)), where
        assert fill["k"] == int(ref["tf_k"])
        values = {"tf_estimate": fill["estimate"], "tf_ci_low": fill["ci_low"],
                  "tf_ci_high": fill["ci_high"], "tf_tau2": fill["tau2"]}
        bad += [(*where, key, value, ref[key]) for key, value in values.items()
                if not _close(value, ref[key])]
    assert not bad, bad[:10]
