"""Small-study effects: Egger's regression test and trim-and-fill, for the funnel plot.

A funnel plot (log HR against its standard error) that is asymmetric — small trials showing
larger benefits than large ones — is the usual sign of publication bias, though not the only
cause (Sterne et al., BMJ 2011;343:d4002). This module computes what a reviewer looks at beside
the plot, following R metafor's conventions so that ``tests/test_small_study_metafor.py`` can
check every number against it:

* **Egger's regression test** (Egger et al., BMJ 1997): the weighted regression of the log HRs
  on their standard errors with weights 1/SE² and a multiplicative dispersion, the slope tested
  with t(k − 2). metafor: ``regtest(res, model = "lm")``. The intercept is the "limit
  estimate", the effect a trial of infinite size would show. Reported for k ≥ 3; Sterne et al.
  advise against reading it with fewer than 10 trials (``k_sufficient`` says which).
* **Trim-and-fill** (Duval & Tweedie, Biometrics 2000), the L0 estimator: how many trials are
  missing on the side the asymmetry points to, and the estimate with mirror images of them
  filled in, pooled with the analysis' own estimator and CI. metafor: ``trimfill(res)`` for the
  side, the number filled and their values; metafor 3.8's ``trimfill`` then pools the augmented
  data with a Wald CI whatever the model's test, where we keep the analysis' CI (HKSJ by
  default), so that the adjusted and the primary estimate differ only by the filled trials — the
  test compares that fit with ``rma`` on trimfill's augmented data. The side
  comes from the sign of the slope of the mixed-effects regression of the log HRs on their
  standard errors with the analysis' τ² estimator (``rma(yi, sei, mods = ~ sei)``), as metafor
  chooses it. A sensitivity analysis, not a corrected estimate: it assumes asymmetry is
  publication bias.

``meta_regression`` is the weighted (mixed-effects) regression both rest on: metafor's
``rma(yi, sei, mods = X, method, test)`` with τ² by REML, DL, PM or none (FE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from reports.meta import (
    _root,
    _upper_bracket,
    _validate,
    check_method,
    meta_analysis,
    reml_maximum,
)
from reports.words import hr_ci_text, hr_number, plural
from store.errors import PoolingError

#: Sterne et al. 2011: below this many trials an asymmetry test cannot tell bias from chance.
MIN_TRIALS_FOR_TESTS = 10
#: Egger's p below which a funnel counts as asymmetric, on the page, in the certainty and in
#: the digest: 0.10 rather than 0.05 because the test has little power (Egger et al. 1997).
ASYMMETRY_P = 0.10
#: The fewest trials the regression can be fitted on (two coefficients and one df).
MIN_TRIALS = 3
_LEVEL = 0.95
_MAX_ITERATIONS = 100
#: The largest |log HR| whose HR is a finite, normal float (exp(709.78) overflows).
_MAX_LOG_HR = 700.0
#: Where trim-and-fill imputes the missing trials, in words: left of the pooled estimate is a
#: smaller HR, i.e. more benefit from maintenance.
SIDE_WORDS = {"left": "on the side of more benefit (left)",
              "right": "on the side of less benefit (right)"}


# ----------------------------------------------------------------------------- regression
@dataclass(frozen=True)
class Regression:
    """A fitted meta-regression: coefficients in the order of the design's columns."""

    coef: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    df: int | None
    tau2: float
    qe: float


def _projection(v: np.ndarray, X: np.ndarray, tau2: float) -> tuple[np.ndarray, np.ndarray]:
    """P = W − W X (X'WX)⁻¹ X'W at τ², and (X'WX)⁻¹."""
    w = 1.0 / (v + tau2)
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    wx = w[:, None] * X
    return np.diag(w) - wx @ xtwx_inv @ wx.T, xtwx_inv


def _qe(y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> float:
    p, _ = _projection(v, X, tau2)
    return float(y @ p @ y)


def _tau2(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str) -> float:
    k, n_coef = X.shape
    if method == "FE":
        return 0.0
    if method == "DL":
        p0, _ = _projection(v, X, 0.0)
        return max(0.0, (float(y @ p0 @ y) - (k - n_coef)) / float(np.trace(p0)))

    spread = float(np.sum((y - y.mean()) ** 2)) + float(np.max(v))
    if method == "PM":
        def excess(t: float) -> float:
            return _qe(y, v, X, t) - (k - n_coef)

        if excess(0.0) <= 0:
            return 0.0
        hi = _upper_bracket(excess, spread)
        return _root(excess, 0.0, hi)

    # REML: the global maximum of the restricted likelihood on τ² ≥ 0 (reml_maximum), from
    # its score y'PPy − tr(P).
    def score(t: float) -> float:
        p, _ = _projection(v, X, t)
        py = p @ y
        return float(py @ py - np.trace(p))

    def loglik(t: float) -> float:
        p, xtwx_inv = _projection(v, X, t)
        _, logdet = np.linalg.slogdet(xtwx_inv)
        return -0.5 * float(np.sum(np.log(v + t)) - logdet + y @ p @ y)

    return reml_maximum(score, lambda grid: np.array([score(float(t)) for t in grid]), loglik,
                        y, v, points=80)


def meta_regression(yi: Sequence[float], sei: Sequence[float], X: np.ndarray, *,
                    method: str = "REML", ci: str = "hksj") -> Regression:
    """Weighted regression of ``yi`` on the design ``X`` (k × p, intercept included by the
    caller), as metafor's ``rma(yi, sei = sei, mods = X[, -1], method, test)``.

    ``ci`` as in :func:`reports.meta.meta_analysis`: ``hksj`` scales the covariance by
    s² = Q_E(τ̂²)/(k − p) and uses t(k − p) (metafor ``knha``), ``hksj-adhoc`` by max(1, s²),
    ``wald`` uses the normal distribution.
    """
    check_method(method, ci)
    y, s, _ = _validate(yi, sei, None)
    v = s**2
    k, n_coef = X.shape
    if k != len(y):
        raise PoolingError(f"{len(y)} effect sizes but a design with {k} rows")
    if k <= n_coef:
        raise PoolingError(f"a regression on {n_coef} coefficients needs more than {n_coef} "
                           f"studies, not {k}")
    if np.linalg.matrix_rank(X) < n_coef:
        raise PoolingError("the regression's predictors are collinear (e.g. every study has "
                           "the same standard error)")
    tau2 = _tau2(y, v, X, method)
    w = 1.0 / (v + tau2)
    xtwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    coef = xtwx_inv @ (X.T @ (w * y))
    resid = y - X @ coef
    qe = float(np.sum(w * resid**2))
    cov = xtwx_inv
    df: int | None = None
    if ci in ("hksj", "hksj-adhoc"):
        s2 = qe / (k - n_coef)
        cov = cov * (max(1.0, s2) if ci == "hksj-adhoc" else s2)
        df = k - n_coef
    se = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = coef / se
    dist: Any = stats.t(df) if df else stats.norm()
    pval = 2 * dist.sf(np.abs(stat))
    crit = float(dist.ppf(1 - (1 - _LEVEL) / 2))
    return Regression(coef=coef, se=se, stat=stat, pval=pval, ci_low=coef - crit * se,
                      ci_high=coef + crit * se, df=df, tau2=tau2, qe=qe)


def _egger_design(sei: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(sei)), sei])


# ----------------------------------------------------------------------------- the tests
def _hr_or_none(log_hr: float) -> float | None:
    """exp(log_hr), or None where it is not a positive finite float (|log HR| past ~709)."""
    if not math.isfinite(log_hr) or abs(log_hr) > _MAX_LOG_HR:
        return None
    return math.exp(log_hr)


def egger_test(yi: Sequence[float], sei: Sequence[float]) -> dict[str, Any]:
    """Egger's test (metafor ``regtest(res, model = "lm")``): ``bias`` is the slope on the SE
    (its t statistic ``stat``, ``df`` = k − 2, two-sided ``p``), ``limit`` the intercept, with
    its CI, on the log scale and as an HR.

    The limit is an extrapolation to SE = 0. When the trials' standard errors span a very
    narrow range (three trials of about the same size) it runs off to hundreds on the log
    scale — metafor prints an HR of ``Inf`` — so ``limit_hr`` and its CI are None and
    ``limit_note`` says why; the test itself (slope, t, p) is still reported, as metafor does.
    """
    s = np.asarray(sei, dtype=float)
    # Egger's weighted least squares = FE weights with the residual variance estimated.
    reg = meta_regression(yi, sei, _egger_design(s), method="FE", ci="hksj")
    limit = [float(reg.coef[0]), float(reg.ci_low[0]), float(reg.ci_high[0])]
    hrs = [_hr_or_none(v) for v in limit]
    note = None
    if any(h is None for h in hrs):
        hrs = [None, None, None]
        note = (f"not estimable: the trials' standard errors span too narrow a range "
                f"({float(s.min()):.4g} to {float(s.max()):.4g}) to extrapolate to a trial "
                "of infinite size")
    return {
        "bias": float(reg.coef[1]), "bias_se": float(reg.se[1]), "stat": float(reg.stat[1]),
        "df": reg.df, "p": float(reg.pval[1]),
        "limit": limit[0], "limit_ci_low": limit[1], "limit_ci_high": limit[2],
        "limit_hr": hrs[0], "limit_hr_ci_low": hrs[1], "limit_hr_ci_high": hrs[2],
        "limit_note": note,
    }


def trim_and_fill(yi: Sequence[float], sei: Sequence[float], *, method: str = "REML",
                  ci: str = "hksj", side: str | None = None) -> dict[str, Any]:
    """Duval & Tweedie's trim-and-fill with the L0 estimator (metafor ``trimfill(res)``).

    ``side`` is where the missing trials are imputed ("left": smaller log HRs, i.e. more
    benefit); None chooses it from the sign of the SE's slope in the mixed-effects regression,
    as metafor does. Returns the side, ``k0`` (trials filled), the filled trials' ``yi``/``sei``
    (mirror images about the trimmed estimate) and the estimate pooled over all k + k0 trials
    with ``method``/``ci``; ``converged`` is False when the iteration did not settle (the last
    k0 is then used and the result says so).
    """
    y, s, _ = _validate(yi, sei, None)
    k = len(y)
    if k < MIN_TRIALS:
        raise PoolingError(f"trim-and-fill needs at least {MIN_TRIALS} trials, not {k}")
    if side is None:
        reg = meta_regression(y.tolist(), s.tolist(), _egger_design(s), method=method, ci="wald")
        # A slope within rounding of 0 (a symmetric funnel) is "left", metafor's choice for 0;
        # its sign would otherwise be floating-point noise.
        side = "right" if reg.coef[1] < -1e-9 * max(1.0, float(reg.se[1])) else "left"
    if side not in ("left", "right"):
        raise PoolingError(f"unknown side {side!r}", hint="use left or right")
    # Work as if the missing trials were on the left: then the excess ones are the largest.
    sign = 1.0 if side == "left" else -1.0
    order = np.argsort(sign * y, kind="stable")
    ys, ss = sign * y[order], s[order]

    k0, previous, converged, centre = 0, -1, False, 0.0
    for _ in range(_MAX_ITERATIONS):
        if k0 == previous:
            converged = True
            break
        previous = k0
        kept = slice(0, k - k0)
        centre = meta_analysis(ys[kept].tolist(), ss[kept].tolist(), method=method, ci="wald",
                               tau2_ci=False).estimate
        dev = ys - centre
        # Ranks of |deviation|, ties broken by position (the sorted order), as R's
        # rank(ties.method = "first").
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(dev), kind="stable")] = np.arange(1, k + 1)
        s_r = float(np.sum(ranks[dev > 0]))
        l0 = (4.0 * s_r - k * (k + 1)) / (2.0 * k - 1.0)
        # R's round() (half to even), like Python's; never more than can be mirrored.
        k0 = int(min(max(0, round(l0)), k - 1))
    fill_y = sign * (2.0 * centre - ys[k - k0:]) if k0 else np.empty(0)
    fill_s = ss[k - k0:] if k0 else np.empty(0)
    all_y = np.concatenate([y, fill_y])
    all_s = np.concatenate([s, fill_s])
    res = meta_analysis(all_y.tolist(), all_s.tolist(), method=method, ci=ci, tau2_ci=False)
    return {
        "side": side, "k0": k0, "converged": converged,
        "filled": [{"yi": float(a), "sei": float(b)} for a, b in zip(fill_y, fill_s, strict=True)],
        "k": res.k, "estimate": res.estimate, "se": res.se, "ci_low": res.ci_low,
        "ci_high": res.ci_high, "tau2": res.tau2, "i2": res.i2, "ci_used": res.ci,
        "hr": res.hr, "hr_ci_low": res.hr_ci_low, "hr_ci_high": res.hr_ci_high,
    }


def small_study_effects(yi: Sequence[float], sei: Sequence[float], *, method: str,
                        ci: str) -> dict[str, Any]:
    """Everything the funnel-plot view shows for one analysis (JSON-ready).

    ``available`` is False below :data:`MIN_TRIALS` trials (``reason`` says why);
    ``k_sufficient`` is False below :data:`MIN_TRIALS_FOR_TESTS`, where the numbers are shown
    but not to be read as evidence of bias. ``egger`` or ``trim_fill`` is None with an
    ``errors`` entry when that part cannot be computed (e.g. every trial has the same SE).
    """
    k = len(yi)
    out: dict[str, Any] = {"k": k, "k_sufficient": k >= MIN_TRIALS_FOR_TESTS,
                           "min_trials": MIN_TRIALS, "min_trials_for_tests": MIN_TRIALS_FOR_TESTS,
                           "available": k >= MIN_TRIALS, "egger": None, "trim_fill": None,
                           "errors": {}}
    if k < MIN_TRIALS:
        out["reason"] = f"{plural(k, 'trial')}: a funnel plot needs at least {MIN_TRIALS}"
        return out
    # A view beside the estimate: whatever goes wrong in it is said there, and never stops the
    # pool run (an overflow here once left every analysis unpublished).
    try:
        out["egger"] = egger_test(yi, sei)
    except PoolingError as exc:
        out["errors"]["egger"] = str(exc)
    except (ArithmeticError, np.linalg.LinAlgError) as exc:
        out["errors"]["egger"] = f"numerical failure ({exc})"
    try:
        out["trim_fill"] = trim_and_fill(yi, sei, method=method, ci=ci)
    except PoolingError as exc:
        out["errors"]["trim_fill"] = str(exc)
    except (ArithmeticError, np.linalg.LinAlgError) as exc:
        out["errors"]["trim_fill"] = f"numerical failure ({exc})"
    out["summary"] = summary_text(out)
    return out


def p_text(p: float) -> str:
    """A p value as the view's sentences print it ("p < 0.001" rather than "p = 0.000")."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def summary_text(view: dict[str, Any]) -> str:
    """One sentence on what the tests say, with the caveat that belongs to it."""
    k = view["k"]
    if not view.get("available"):
        return view.get("reason", "")
    parts = []
    egger = view.get("egger")
    if egger:
        parts.append(f"Egger's test {p_text(egger['p'])}"
                     + (" (asymmetry)" if egger["p"] < ASYMMETRY_P else ""))
    tf = view.get("trim_fill")
    if tf:
        parts.append("trim-and-fill adds no trial" if tf["k0"] == 0 else
                     f"trim-and-fill adds {plural(tf['k0'], 'trial')} "
                     f"{SIDE_WORDS[tf['side']]}: HR "
                     f"{hr_ci_text(tf['hr'], tf['hr_ci_low'], tf['hr_ci_high'])}")
    text = "; ".join(parts) or "no test could be computed"
    if not view["k_sufficient"]:
        text += (f". With {k} trials (< {MIN_TRIALS_FOR_TESTS}) these cannot tell asymmetry "
                 "from chance")
    return text + "."


def short_text(view: dict[str, Any] | None) -> str | None:
    """The few words a table line has room for (``mmlr pool``); None without a funnel."""
    if not view or not view.get("available"):
        return None
    parts = []
    if view.get("egger"):
        parts.append(f"Egger {p_text(view['egger']['p'])}")
    fill = view.get("trim_fill")
    if fill:
        parts.append(f"trim-and-fill +{fill['k0']}"
                     + (f" (HR {hr_number(fill['hr'])})" if fill["k0"] else ""))
    if not parts:
        return None
    return ", ".join(parts) + ("" if view["k_sufficient"]
                               else f" (k < {MIN_TRIALS_FOR_TESTS}: not interpretable)")
