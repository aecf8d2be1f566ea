"""Inverse-variance meta-analysis of log hazard ratios, following R metafor's conventions.

``meta_analysis(yi, sei, method=..., ci=...)`` is the equivalent of

    res <- rma(yi, sei=sei, method=METHOD, test=TEST)   # TEST: "knha" | "adhoc" | "z"
    predict(res)                                        # CI and prediction interval
    confint(res)                                        # Q-profile CI of tau^2

with ``ci="hksj"`` ↔ ``test="knha"``, ``ci="hksj-adhoc"`` ↔ ``test="adhoc"`` and ``ci="wald"``
↔ ``test="z"``. Agreement with metafor to 1e-6 is checked by ``tests/test_meta_metafor.py``.

Conventions (metafor's; where another convention is common it is named):

- τ² estimators: ``REML`` (default; the global maximum of the restricted likelihood on
  τ² ≥ 0, found by root-bracketing the score rather than metafor's Fisher scoring, so the value
  is the converged one), ``DL`` (DerSimonian–Laird, truncated at 0), ``PM`` (Paule–Mandel: the
  generalised Q equals k−1), ``FE`` (τ² = 0; metafor calls it "EE"/"FE").
- I² for random-effects models is metafor's 100·τ²/(τ² + s²), with s² the "typical"
  within-study variance (k−1)/tr(P); it therefore depends on the τ² estimator. For FE it is
  Higgins' (Q − df)/Q, truncated at 0 (the value RevMan prints for every model).
- HKSJ: the variance of the estimate is multiplied by s²_w = Σ w*(y−μ̂)²/(k−1) and t(k−1)
  quantiles are used. ``hksj`` does this even when s²_w < 1 (Hartung–Knapp proper, metafor
  ``knha``; identical studies give s²_w = 0 and a zero-width CI, which we flag in ``notes``);
  ``hksj-adhoc`` uses max(1, s²_w) (Knapp–Hartung's ad hoc correction, Cochrane's advice).
- Prediction interval: μ̂ ± crit·sqrt(SE² + τ²) with crit from t(k−1) under HKSJ and from the
  normal under Wald (metafor's ``predict()``). Cochrane/Higgins 2009 and IntHout 2016 use
  t(k−2) with the Wald SE instead; metafor offers it as ``pi.type="Riley"``-like variants; we
  follow metafor's default.
- A fixed-effect model has no prediction interval (``pi_low``/``pi_high`` are NaN, stored as
  null), as metafor's ``predict()`` omits it.
- k = 1: τ² = 0, Q = 0 (p = 1), I² = 0, H² = 1 and metafor switches to a Wald test (it cannot
  use t with 0 df), so ``ci`` is reported as ``"wald"`` and a note says why.
- Q-profile CI of τ² (Viechtbauer 2007): as ``confint.rma.uni``, searching τ² in
  [0, max(100, 10·τ̂²)]; an end of that interval is returned when the bound lies beyond it.
- Test for subgroup differences: each subgroup pooled with its own τ² (``meta_analysis`` per
  subgroup), then Cochran's Q across the subgroup estimates with weights 1/SE²
  (``rma(est, sei=se, method="FE")``'s Q; RevMan's "test for subgroup differences").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

from store.errors import PoolingError

log = logging.getLogger(__name__)

Method = Literal["REML", "DL", "PM", "FE"]
CiMethod = Literal["hksj", "hksj-adhoc", "wald"]
METHODS: tuple[str, ...] = ("REML", "DL", "PM", "FE")
CI_METHODS: tuple[str, ...] = ("hksj", "hksj-adhoc", "wald")
#: metafor's ``test=`` for each of our CI names.
METAFOR_TEST = {"hksj": "knha", "hksj-adhoc": "adhoc", "wald": "z"}

_LEVEL = 0.95
#: The normal quantile of every 95% interval mmlr computes or takes apart (1.95996398…, R's
#: qnorm(0.975)): a pooled Wald CI, an SE from a printed CI (reports.derive), forest and funnel
#: plots, the network. One value, so that a CI rebuilt from the SE it gave is the CI entered.
Z95 = float(stats.norm.ppf(1 - (1 - _LEVEL) / 2))


# ----------------------------------------------------------------------------- results
@dataclass
class MetaResult:
    """One pooled estimate (log scale) with its heterogeneity statistics."""

    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau2: float
    tau2_ci: tuple[float, float] | None
    i2: float  # percent
    h2: float
    q: float
    q_df: int
    q_p: float
    weights: list[float]  # percent, in input order
    method: str
    ci: str
    pval: float = float("nan")
    stat: float = float("nan")  # z or t statistic of the estimate
    df: int | None = None  # degrees of freedom of the t test (None for Wald)
    s2w: float = 1.0  # HKSJ variance multiplier (1 for Wald)
    labels: list[str] = field(default_factory=list)
    yi: list[float] = field(default_factory=list)
    sei: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    requested_ci: str = ""

    # ---- HR scale -------------------------------------------------------------------
    @property
    def hr(self) -> float:
        return math.exp(self.estimate)

    @property
    def hr_ci_low(self) -> float:
        return math.exp(self.ci_low)

    @property
    def hr_ci_high(self) -> float:
        return math.exp(self.ci_high)

    @property
    def hr_pi_low(self) -> float:
        return math.exp(self.pi_low)

    @property
    def hr_pi_high(self) -> float:
        return math.exp(self.pi_high)

    # ---- sensitivity views ----------------------------------------------------------
    def leave_one_out(self) -> list[tuple[str, MetaResult]]:
        """Refit without each study in turn (same method and CI); needs k ≥ 2."""
        if self.k < 2:
            return []
        out = []
        for i in range(self.k):
            keep = [j for j in range(self.k) if j != i]
            out.append((self.labels[i], self._refit(keep)))
        return out

    def cumulative(self, order: Sequence[Any] | None = None) -> list[tuple[str, MetaResult]]:
        """Cumulative meta-analysis: add studies in ``order`` (sort keys per study, e.g.
        publication or data-cut dates; ties keep input order). Entry i pools the first i+1."""
        keys = list(range(self.k)) if order is None else list(order)
        if len(keys) != self.k:
            raise PoolingError(
                f"cumulative(): {len(keys)} sort keys for {self.k} studies",
                hint="give one date (or key) per study",
            )
        idx = sorted(range(self.k), key=lambda i: (keys[i], i))
        return [(self.labels[idx[n]], self._refit(idx[: n + 1])) for n in range(self.k)]

    def _refit(self, rows: Sequence[int]) -> MetaResult:
        return meta_analysis(
            [self.yi[j] for j in rows], [self.sei[j] for j in rows],
            method=self.method, ci=self.requested_ci or self.ci,  # type: ignore[arg-type]
            labels=[self.labels[j] for j in rows], tau2_ci=False,
        )

    def to_json(self, name: str = "all") -> dict[str, Any]:
        """The ``analyses[]`` entry of ``mmlr meta --json`` / ``mmlr pool --json``."""
        return clean_json({
            "name": name, "k": self.k, "estimate": self.estimate, "se": self.se,
            "ci_low": self.ci_low, "ci_high": self.ci_high,
            "pi_low": self.pi_low, "pi_high": self.pi_high,
            "hr": self.hr, "hr_ci_low": self.hr_ci_low, "hr_ci_high": self.hr_ci_high,
            "hr_pi_low": self.hr_pi_low, "hr_pi_high": self.hr_pi_high,
            "tau2": self.tau2,
            "tau2_ci_low": self.tau2_ci[0] if self.tau2_ci else None,
            "tau2_ci_high": self.tau2_ci[1] if self.tau2_ci else None,
            "i2": self.i2, "h2": self.h2, "q": self.q, "q_df": self.q_df, "q_p": self.q_p,
            "pval": self.pval, "df": self.df, "method": self.method, "ci": self.ci,
            "weights": self.weights, "notes": self.notes,
        })


@dataclass
class SubgroupTest:
    """Cochran's Q across subgroup estimates (each subgroup with its own τ²)."""

    q: float
    df: int
    p: float
    subgroups: list[str]

    def to_json(self) -> dict[str, Any]:
        return clean_json({"q": self.q, "df": self.df, "p": self.p})


def hr_of(log_hr: float | None) -> float | None:
    """exp of a stored log HR (or CI limit): None when there is none, inf beyond the float
    range (an HKSJ interval of two discordant trials can reach it), never an OverflowError."""
    if log_hr is None or not math.isfinite(log_hr):
        return None
    try:
        return math.exp(log_hr)
    except OverflowError:
        return math.inf


def clean_json(value: Any) -> Any:
    """NaN/inf → None, numpy scalars → Python (PostgreSQL's JSON refuses NaN)."""
    if isinstance(value, dict):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- validation
def _validate(
    yi: Sequence[float], sei: Sequence[float], labels: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if len(yi) != len(sei):
        raise PoolingError(f"{len(yi)} effect sizes but {len(sei)} standard errors")
    if len(yi) == 0:
        raise PoolingError("nothing to pool: no studies", hint="give at least one study")
    names = [str(x) for x in labels] if labels is not None else [
        f"row {i + 1}" for i in range(len(yi))
    ]
    if len(names) != len(yi):
        raise PoolingError(f"{len(names)} labels for {len(yi)} studies")
    y = np.empty(len(yi))
    s = np.empty(len(yi))
    for i, (a, b) in enumerate(zip(yi, sei, strict=True)):
        try:
            y[i] = float(a)
            s[i] = float(b)
        except (TypeError, ValueError):
            raise PoolingError(
                f"study {names[i]!r}: effect {a!r} / SE {b!r} is not a number"
            ) from None
        if not math.isfinite(y[i]):
            raise PoolingError(f"study {names[i]!r}: log HR is {y[i]} (not a finite number)",
                               hint="check the HR and its CI")
        if not math.isfinite(s[i]) or s[i] <= 0:
            raise PoolingError(
                f"study {names[i]!r}: standard error {s[i]} must be a positive finite number",
                hint="a zero, negative or missing SE cannot be inverse-variance weighted",
            )
    return y, s, names


def check_method(method: str, ci: str) -> None:
    """PoolingError for an unknown τ² estimator or CI method (every fit checks both)."""
    if method not in METHODS:
        raise PoolingError(f"unknown pooling method {method!r}",
                           hint=f"use one of {', '.join(METHODS)}")
    if ci not in CI_METHODS:
        raise PoolingError(f"unknown CI method {ci!r}", hint=f"use one of {', '.join(CI_METHODS)}")


# ----------------------------------------------------------------------------- τ² estimators
def _gen_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Generalised Cochran's Q at τ² (metafor's ``.QE.func`` with objective 0)."""
    w = 1.0 / (v + tau2)
    mu = float((w * y).sum() / w.sum())
    return float((w * (y - mu) ** 2).sum())


def _tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / v
    q = _gen_q(0.0, y, v)
    trace_p = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    return max(0.0, (q - (len(y) - 1)) / trace_p)


def _root(fn: Callable[[float], float], lo: float, hi: float) -> float:
    return float(optimize.brentq(fn, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps,
                                 maxiter=500))


def _upper_bracket(fn: Callable[[float], float], start: float) -> float:
    """Grow ``hi`` until fn(hi) < 0 (fn decreasing in τ²)."""
    hi = max(start, 1e-4)
    for _ in range(200):
        if fn(hi) < 0:
            return hi
        hi *= 4.0
    raise PoolingError("τ² search did not converge (heterogeneity beyond any finite bound)")


def _tau2_pm(y: np.ndarray, v: np.ndarray) -> float:
    k = len(y)

    def excess(t: float) -> float:
        return _gen_q(t, y, v) - (k - 1)

    if excess(0.0) <= 0:
        return 0.0
    hi = _upper_bracket(excess, float(np.var(y, ddof=1)) + float(np.max(v)))
    return _root(excess, 0.0, hi)


def _reml_score(t: float, y: np.ndarray, v: np.ndarray) -> float:
    """d/dτ² of the restricted log-likelihood, times 2: y'PPy − tr(P)."""
    w = 1.0 / (v + t)
    sw = float(w.sum())
    mu = float((w * y).sum() / sw)
    w2 = w * w
    return float((w2 * (y - mu) ** 2).sum() - (sw - w2.sum() / sw))


def _reml_loglik(t: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / (v + t)
    sw = float(np.sum(w))
    mu = float(np.sum(w * y) / sw)
    return -0.5 * float(np.sum(np.log(v + t)) + math.log(sw) + np.sum(w * (y - mu) ** 2))


def _tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    """Global maximiser of the restricted likelihood on τ² ≥ 0 (``reml_maximum``)."""
    def score(t: float) -> float:
        return _reml_score(t, y, v)

    def scores(grid: np.ndarray) -> np.ndarray:
        # The whole grid in one broadcast (rows: τ² values), not one Python call per point.
        w = 1.0 / (v[None, :] + grid[:, None])
        sw = w.sum(axis=1)
        mu = (w * y).sum(axis=1) / sw
        w2 = w**2
        return (w2 * (y[None, :] - mu[:, None]) ** 2).sum(axis=1) - (sw - w2.sum(axis=1) / sw)

    return reml_maximum(score, scores, lambda t: _reml_loglik(t, y, v), y, v, points=120)


def reml_maximum(score: Callable[[float], float], scores: Callable[[np.ndarray], np.ndarray],
                 loglik: Callable[[float], float], y: np.ndarray, v: np.ndarray, *,
                 points: int) -> float:
    """The τ² ≥ 0 where a restricted likelihood is largest, from its ``score`` (the
    derivative, decreasing through each maximum) and ``loglik``: the score is scanned on a
    geometric grid of ``points`` so a second local maximum cannot hide (metafor guards the same
    case with its ``ll0check``), each + → − sign change is refined with Brent, and the best
    candidate wins. ``scores`` evaluates the score on the whole grid. Shared by the pooled
    estimate and the meta-regression (``reports.small_study``)."""
    spread = float(np.sum((y - y.mean()) ** 2)) + float(np.max(v))
    hi = _upper_bracket(score, 10.0 * spread)
    grid = np.concatenate(([0.0], np.geomspace(1e-10 * spread, hi, points)))
    values = scores(grid)
    candidates = [0.0] if values[0] <= 0 else []
    for j in np.nonzero((values[:-1] > 0) & (values[1:] <= 0))[0]:
        candidates.append(_root(score, float(grid[j]), float(grid[j + 1])))
    if not candidates:  # score positive everywhere on the grid: cannot happen (hi has score < 0)
        raise PoolingError("REML τ² search failed", hint="try method DL or PM")
    return max(candidates, key=loglik)


def _tau2_qprofile(y: np.ndarray, v: np.ndarray, tau2: float) -> tuple[float, float]:
    """Q-profile 95% CI of τ² exactly as ``confint.rma.uni`` searches it."""
    k = len(y)
    t_max = max(100.0, 10.0 * tau2)
    crit_u = float(stats.chi2.ppf(1 - (1 - _LEVEL) / 2, k - 1))
    crit_l = float(stats.chi2.ppf((1 - _LEVEL) / 2, k - 1))
    q_min, q_max = _gen_q(0.0, y, v), _gen_q(t_max, y, v)
    if q_min < crit_l:
        return 0.0, 0.0
    upper = t_max if q_max > crit_l else _root(lambda t: _gen_q(t, y, v) - crit_l, 0.0, t_max)
    if q_max > crit_u:
        return t_max, t_max
    lower = 0.0 if q_min < crit_u else _root(lambda t: _gen_q(t, y, v) - crit_u, 0.0, t_max)
    return lower, upper


# ----------------------------------------------------------------------------- the model
def _below_one(value: float) -> str:
    """``value`` (0 < value < 1) with three significant digits, or as many more as it takes
    to read below 1: "{:.3g}" wrote 0.9996 as "1", and six fixed decimals with the zeros
    stripped wrote 0.9999995 as "1." — either way "s²w = 1 < 1"."""
    # 17 significant digits give back the float itself, which is below 1: the loop ends there.
    for digits in range(3, 18):
        shown = f"{value:.{digits}g}"
        if float(shown) < 1.0:
            return shown
    return repr(value)


def meta_analysis(
    yi: Sequence[float],
    sei: Sequence[float],
    *,
    method: Method | str = "REML",
    ci: CiMethod | str = "hksj",
    labels: Sequence[str] | None = None,
    tau2_ci: bool = True,
) -> MetaResult:
    """Pool log HRs ``yi`` with standard errors ``sei`` (metafor ``rma`` + ``predict``).

    ``tau2_ci=False`` skips the Q-profile search (leave-one-out and cumulative refits do).

    Raises :class:`store.errors.PoolingError` naming the offending study for empty input,
    non-finite effects, or zero/negative/non-finite standard errors, and for unknown
    ``method``/``ci`` values.
    """
    check_method(method, ci)
    y, s, names = _validate(yi, sei, labels)
    v = s**2
    k = len(y)
    notes: list[str] = []
    requested_ci = str(ci)

    if k == 1:
        tau2 = 0.0
        if ci != "wald":
            notes.append("k = 1: Wald (z) interval used, as metafor does (t has 0 df)")
            ci = "wald"
    elif method == "FE":
        tau2 = 0.0
        if ci != "wald":
            notes.append("HKSJ applied to a fixed-effect model "
                         "(metafor warns it is not meant for FE)")
    elif method == "DL":
        tau2 = _tau2_dl(y, v)
    elif method == "PM":
        tau2 = _tau2_pm(y, v)
    else:
        tau2 = _tau2_reml(y, v)

    w = 1.0 / (v + tau2)
    sw = float(np.sum(w))
    mu = float(np.sum(w * y) / sw)
    var = 1.0 / sw

    s2w = 1.0
    df: int | None = None
    if ci in ("hksj", "hksj-adhoc"):
        rss = float(np.sum(w * (y - mu) ** 2))
        s2w = 0.0 if rss <= np.finfo(float).eps else rss / (k - 1)
        if ci == "hksj-adhoc":
            s2w = max(1.0, s2w)
        elif s2w == 0.0:
            notes.append("studies agree exactly: HKSJ variance is 0, so the CI has zero width "
                         "(use --ci hksj-adhoc)")
        elif s2w < 1.0 - 1e-9:
            # Not below 1 by rounding error alone (REML's τ² at the boundary leaves 1 − 2e-16):
            # such a CI is Wald's to every printed digit, and the note would say otherwise.
            notes.append(f"HKSJ multiplier s²w = {_below_one(s2w)} < 1 narrows the CI below "
                         "Wald's; hksj-adhoc would not")
        var *= s2w
        df = k - 1
    se = math.sqrt(var)
    crit = float(stats.t.ppf(1 - (1 - _LEVEL) / 2, df)) if df else Z95
    # HKSJ on identical studies gives SE 0: metafor reports z = ±Inf (p = 0), or NaN for 0/0.
    zero_se_stat = math.copysign(math.inf, mu) if mu != 0 else math.nan
    stat = mu / se if se > 0 else zero_se_stat
    pval = float(2 * (stats.t.sf(abs(stat), df) if df else stats.norm.sf(abs(stat))))
    # metafor's predict() gives no prediction interval for a fixed-effect model.
    pi_half = math.nan if method == "FE" else crit * math.sqrt(var + tau2)
    if k == 2 and method != "FE":
        # Computed as metafor does, but a reader should not take it at face value: τ² from
        # two trials is barely estimable, and the usual t(k−2) interval does not exist.
        notes.append("k = 2: τ² and the prediction interval rest on two trials; the interval "
                     "is metafor's predict() (t with 1 df under HKSJ, critical value 12.7), "
                     "Higgins–Thompson–Spiegelhalter's t(k−2) interval is undefined; read "
                     "the two trials' own estimates")

    # Heterogeneity uses the fixed-effect weights whatever the model (metafor).
    if k > 1:
        w_fe = 1.0 / v
        sw_fe = float(np.sum(w_fe))
        mu_fe = float(np.sum(w_fe * y) / sw_fe)
        q = max(0.0, float(np.sum(w_fe * (y - mu_fe) ** 2)))
        q_p = float(stats.chi2.sf(q, k - 1))
        if method == "FE":
            i2 = max(0.0, 100.0 * (q - (k - 1)) / q) if q > 0 else 0.0
            h2 = q / (k - 1)
            q_ci = None
        else:
            vt = (k - 1) / (sw_fe - float(np.sum(w_fe**2)) / sw_fe)
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
            q_ci = _tau2_qprofile(y, v, tau2) if tau2_ci else None
    else:
        q, q_p, i2, h2, q_ci = 0.0, 1.0, 0.0, 1.0, None

    return MetaResult(
        k=k, estimate=mu, se=se, ci_low=mu - crit * se, ci_high=mu + crit * se,
        pi_low=mu - pi_half, pi_high=mu + pi_half, tau2=tau2, tau2_ci=q_ci,
        i2=i2, h2=h2, q=q, q_df=k - 1, q_p=q_p,
        weights=[float(x) for x in 100.0 * w / sw],
        method=str(method), ci=str(ci), pval=pval, stat=stat, df=df, s2w=s2w,
        labels=names, yi=[float(x) for x in y], sei=[float(x) for x in s], notes=notes,
        requested_ci=requested_ci,
    )


def subgroup_test_undefined(results: Sequence[tuple[str, MetaResult]]) -> str | None:
    """Why the test for subgroup differences across ``results`` is undefined, or None.

    A subgroup whose SE is 0 (HKSJ on trials with identical results: two entries of one
    trial, say) cannot be weighted. That raised, and one such subgroup stopped every analysis
    of a pool run and the cycle's digest; it is now said beside the analysis instead."""
    zero = [name for name, res in results if not res.se > 0]
    if len(results) < 2 or not zero:
        return None
    return (f"no test for subgroup differences: subgroup {zero[0]!r} has a zero standard "
            "error (HKSJ on trials with identical results), which cannot be weighted; the "
            "hksj-adhoc interval (MMLR_POOL_CI, or mmlr meta --ci) gives it one")


def subgroup_test(results: Sequence[tuple[str, MetaResult]]) -> SubgroupTest | None:
    """Test for subgroup differences across ≥ 2 subgroup fits (see the module docstring);
    None with fewer, or when it is undefined (:func:`subgroup_test_undefined`)."""
    if len(results) < 2 or subgroup_test_undefined(results):
        return None
    est = np.array([r.estimate for _, r in results])
    w = np.array([1.0 / r.se**2 for _, r in results])
    mu = float(np.sum(w * est) / np.sum(w))
    q = float(np.sum(w * (est - mu) ** 2))
    df = len(results) - 1
    return SubgroupTest(q=q, df=df, p=float(stats.chi2.sf(q, df)),
                        subgroups=[name for name, _ in results])
