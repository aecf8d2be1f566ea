"""Network meta-analysis of log hazard ratios: contrast-based, frequentist, multivariate.

Pairwise pools answer "does lenalidomide beat no maintenance?"; a maintenance guideline also
asks "lenalidomide or thalidomide?", which few trials compare head to head. A network
meta-analysis combines the direct contrasts (X vs control, X vs Y) into one consistent set of
relative effects, so every pair of treatments gets an estimate (Gay F et al., JAMA Oncol
2018;4(10):1389-97 did this for myeloma maintenance).

``network_meta_analysis(contrasts, reference=...)`` is the equivalent of

    rma.mv(yi, V, mods = X, intercept = FALSE, random = ~ comp | study, rho = 1/2,
           method = "REML")                          # method "FE": method = "FE", no random

with ``X`` the contrast design matrix (one column per treatment other than the reference,
+1 for the contrast's treatment arm, −1 for its control arm). Agreement with metafor is checked
by ``tests/test_network_metafor.py``. Conventions, and why:

- **Model.** Effects d_t of each treatment t against the reference (log HR); a contrast "a vs
  b" estimates d_a − d_b (consistency). Random effects: one heterogeneity variance τ² for every
  comparison, two contrasts of the same multi-arm trial correlated with τ²/2 (the usual
  homogeneous-variance assumption; metafor's ``rho = 1/2``). τ² by REML, found by scanning
  and root-bracketing the restricted score (``reports.meta.reml_maximum``), so it is the
  converged global maximum.
- **Multi-arm trials.** A trial with three arms contributes two contrasts against one common
  arm. Published hazard ratios come without the arm-level variances that give their exact
  covariance; we take the covariance of two contrasts sharing an arm as half the geometric
  mean of their variances (correlation 0.5, exact when the arms' variances are equal: the
  standard approximation). The covariance is the shared arm's variance, which is part of both
  contrasts' variances, so it can be no larger than the smaller of the two; when one SE is
  more than twice the other the geometric-mean rule exceeds that, implying a negative
  variance for the better-informed contrast's other arm, and the covariance is capped at the
  smaller contrast variance (``_within_cov``; a fit note names the trial). Contrasts of one
  trial must share one arm (a "star"); the caller (``reports.network_inputs``) keeps them so.
- **CIs** are Wald (normal) intervals, as metafor's ``rma.mv`` and R netmeta report them.
  Hartung–Knapp has no agreed multivariate form; the pairwise analyses keep HKSJ.
- **Heterogeneity and inconsistency.** Q of the common-effect model (metafor's ``QE``),
  decomposed as Krahn et al. (BMC Med Res Methodol 2013;13:35): Q within designs (the
  design-by-treatment interaction model's residual Q: heterogeneity between trials of the
  same design) and Q between designs (Q − Q within: inconsistency). I² = (Q − df)/Q. That Q
  between designs takes every trial as exact, so in a random-effects network heterogeneity
  within designs reads as inconsistency; there, whether direct and indirect evidence
  disagree is judged on Krahn's random-effects version (netmeta's ``Q.inc.random``): the
  consistency model's Q minus the interaction model's, both with τ² of the full
  design-by-treatment interaction model (REML), ``NetworkResult.inconsistency``.
- **Ranking.** P-scores (Rücker & Schwarzer, BMC Med Res Methodol 2015;15:58): the mean over
  the other treatments of the probability that a treatment's HR is lower (better), from the
  network's normal approximation. A ranking is only as sure as its CIs; the page says so.
- **Direct and indirect evidence** (the back-calculation of netmeta's ``netsplit``, SIDE;
  König et al., Stat Med 2013;32:5414-29): for each pair some trial randomised, the direct
  estimate pools those trials (weights 1/(v + τ²) with the network's τ²), the indirect
  estimate is what the network estimate implies besides it, and z tests their difference.
  A multi-arm trial is direct evidence for every pair of its arms, but its pairs are not
  independent trials: as netmeta does, each pair is weighted by Rücker's method (Res Synth
  Methods 2012;3:312-24), which turns the trial's pairwise variances (v_A + v_B − 2·cov for
  A vs B of an A/B/P trial, from the covariance assumed above, plus τ²) into independent
  pairs that together carry the trial's information once. With a arms of equal variance
  each pair's variance is multiplied by a/2 (×1.5 for three arms); a two-arm trial is
  unchanged. The back-calculation is exact for two-arm trials, an approximation where
  multi-arm trials are involved (noted).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from reports.meta import Z95, clean_json, hr_of, reml_maximum
from reports.words import hr_ci_text, plural
from store.errors import PoolingError

log = logging.getLogger(__name__)

NETWORK_METHODS: tuple[str, ...] = ("REML", "FE")
_LEVEL = 0.95
#: Correlation of two contrasts of one trial sharing an arm (see the module docstring).
SHARED_ARM_CORRELATION = 0.5


def hr_text(log_hr: float, ci_low: float, ci_high: float) -> str:
    """``"0.54 (0.45–0.65)"`` from log-scale values, as every page writes an HR
    (``reports.words.hr_ci_text``: two decimals half-up; below 0.01 two significant digits,
    so a tiny bound is never "0.00")."""
    return hr_ci_text(hr_of(log_hr), hr_of(ci_low), hr_of(ci_high))


def wald_ci(log_hr: float, se: float) -> tuple[float, float]:
    """The 95% Wald interval of a log HR."""
    return log_hr - Z95 * se, log_hr + Z95 * se


@dataclass(frozen=True)
class Contrast:
    """One trial's log HR of ``treat`` versus ``control`` (HR < 1 favours ``treat``)."""

    study: str
    treat: str
    control: str
    log_hr: float
    se: float
    estimate_id: int | None = None
    n_treat: int | None = None
    n_control: int | None = None
    label: str = ""  # what a page shows for the row (trial and data cut)
    # The trial's HR and CI as the pairwise analyses show them (its printed digits:
    # reports.presentation.trial_hr), not the Wald interval rebuilt from its SE, which can
    # differ from the paper in the last digit; None: rebuilt (a derived HR, a flipped row).
    shown: str | None = None

    @property
    def hr_text(self) -> str:
        if self.shown is not None:
            return self.shown
        return hr_text(self.log_hr, *wald_ci(self.log_hr, self.se))

    def flipped(self) -> Contrast:
        return Contrast(self.study, self.control, self.treat, -self.log_hr, self.se,
                        self.estimate_id, self.n_control, self.n_treat, self.label)


@dataclass(frozen=True)
class Relative:
    """The network's estimate of ``treat`` versus ``control`` (log scale, Wald CI) and, for a
    random-effects network, the 95% prediction interval: where the true contrast of a new
    trial is expected, log HR ± z·√(SE² + τ²) (metafor's ``predict()`` for ``rma.mv``).
    ``tau2`` None: a common-effect network, which has none, or a random-effects one whose τ²
    could not be estimated (``NetworkResult.tau2_estimable``): its interval would be the CI
    with τ² taken as 0, which says nothing about a new trial."""

    treat: str
    control: str
    log_hr: float
    se: float
    tau2: float | None = None

    @property
    def pi_low(self) -> float | None:
        return None if self.tau2 is None else self.log_hr - Z95 * math.hypot(
            self.se, math.sqrt(self.tau2))

    @property
    def pi_high(self) -> float | None:
        return None if self.tau2 is None else self.log_hr + Z95 * math.hypot(
            self.se, math.sqrt(self.tau2))

    @property
    def ci_low(self) -> float:
        return wald_ci(self.log_hr, self.se)[0]

    @property
    def ci_high(self) -> float:
        return wald_ci(self.log_hr, self.se)[1]

    @property
    def p(self) -> float:
        return float(2 * stats.norm.sf(abs(self.log_hr / self.se))) if self.se > 0 else math.nan

    @property
    def hr_text(self) -> str:
        return hr_text(self.log_hr, self.ci_low, self.ci_high)

    def to_json(self) -> dict[str, Any]:
        return {"treat": self.treat, "control": self.control, "log_hr": self.log_hr,
                "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.p,
                "hr": hr_of(self.log_hr), "hr_ci_low": hr_of(self.ci_low),
                "hr_ci_high": hr_of(self.ci_high), "pi_low": self.pi_low,
                "pi_high": self.pi_high,
                "hr_pi_low": hr_of(self.pi_low) if self.pi_low is not None else None,
                "hr_pi_high": hr_of(self.pi_high) if self.pi_high is not None else None}


@dataclass(frozen=True)
class Split:
    """Direct against indirect evidence for one pair (``treat`` vs ``control``)."""

    treat: str
    control: str
    k_direct: int
    direct: float
    direct_se: float
    indirect: float | None
    indirect_se: float | None
    network: float
    network_se: float
    approximate: bool  # the network has a multi-arm trial: back-calculation approximates

    @property
    def direct_text(self) -> str:
        return hr_text(self.direct, *wald_ci(self.direct, self.direct_se))

    @property
    def indirect_text(self) -> str | None:
        if self.indirect is None or self.indirect_se is None:
            return None
        return hr_text(self.indirect, *wald_ci(self.indirect, self.indirect_se))

    @property
    def direct_share(self) -> float:
        """How much of the network estimate's precision comes from the direct trials."""
        return min(1.0, (self.network_se / self.direct_se) ** 2)

    @property
    def z(self) -> float | None:
        if self.indirect is None or self.indirect_se is None:
            return None
        return (self.direct - self.indirect) / math.hypot(self.direct_se, self.indirect_se)

    @property
    def p(self) -> float | None:
        z = self.z
        return None if z is None else float(2 * stats.norm.sf(abs(z)))

    def to_json(self) -> dict[str, Any]:
        return {"treat": self.treat, "control": self.control, "k_direct": self.k_direct,
                "direct": self.direct, "direct_se": self.direct_se,
                "direct_hr": hr_of(self.direct), "indirect": self.indirect,
                "indirect_se": self.indirect_se,
                "indirect_hr": hr_of(self.indirect) if self.indirect is not None else None,
                "network": self.network, "network_se": self.network_se,
                "direct_share": self.direct_share, "z": self.z, "p": self.p,
                "approximate": self.approximate}


@dataclass(frozen=True)
class QTest:
    q: float
    df: int

    @property
    def p(self) -> float | None:
        return float(stats.chi2.sf(self.q, self.df)) if self.df > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"q": self.q, "df": self.df, "p": self.p}


@dataclass
class NetworkResult:
    """A fitted network: relative effects, heterogeneity, inconsistency, ranking."""

    method: str
    reference: str
    treatments: list[str]  # reference first, then in first-seen order
    contrasts: list[Contrast]  # as fitted (multi-arm rows oriented to the common arm)
    studies: int
    tau2: float
    basic: np.ndarray  # d_t for treatments[1:], versus the reference
    cov: np.ndarray
    q_total: QTest
    q_within: QTest
    q_between: QTest
    p_scores: dict[str, float]
    splits: list[Split]
    disconnected: list[Contrast] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # A random-effects network's Q between designs with τ² of the design-by-treatment
    # interaction model (``_q_between_random``) and that τ²; None for a common-effect one.
    q_between_random: QTest | None = None
    tau2_within_designs: float | None = None

    @property
    def inconsistency(self) -> QTest:
        """The Q between designs that says whether direct and indirect evidence disagree: a
        random-effects network's with its within-design τ² (heterogeneity is not
        inconsistency), a common-effect network's common-effect one."""
        return self.q_between_random if self.q_between_random is not None else self.q_between

    @property
    def unconnected(self) -> list[str]:
        """The treatments of the trials left out as not connected to the reference."""
        arms = {t for c in self.disconnected for t in (c.treat, c.control)}
        return sorted(arms - set(self.treatments), key=str.casefold)

    @property
    def disconnection_note(self) -> str | None:
        """What the summaries say about the trials left out (the page lists them too):
        which treatments are missing from this network's rows, and through which trials."""
        if not self.disconnected:
            return None
        names = sorted({c.study for c in self.disconnected}, key=str.casefold)
        return (f"not connected to {self.reference}, so not in this network: "
                f"{', '.join(self.unconnected)} ({plural(len(names), 'trial')}: "
                f"{', '.join(names)})")

    @property
    def tau2_estimable(self) -> bool:
        """Whether τ² was estimated: a random-effects network with more contrasts than
        treatment effects (Q has degrees of freedom). Without, τ² is taken as 0 (``notes``)
        and no prediction interval is given: it would be the CI, which says nothing about a
        new trial."""
        return self.method == "REML" and self.q_total.df > 0

    @property
    def i2(self) -> float:
        q, df = self.q_total.q, self.q_total.df
        return max(0.0, 100.0 * (q - df) / q) if q > 0 and df > 0 else 0.0

    def relative(self, treat: str, control: str) -> Relative:
        """The network estimate of ``treat`` versus ``control``."""
        index = {t: i for i, t in enumerate(self.treatments)}
        for name in (treat, control):
            if name not in index:
                raise PoolingError(f"treatment {name!r} is not in this network",
                                   hint=f"its treatments: {', '.join(self.treatments)}")
        a = np.zeros(len(self.treatments) - 1)
        if index[treat]:
            a[index[treat] - 1] += 1.0
        if index[control]:
            a[index[control] - 1] -= 1.0
        est = float(a @ self.basic)
        var = float(a @ self.cov @ a)
        # No prediction interval without an estimated τ²: the page says "not estimable", and
        # the JSON, sof.md and the digest read it from here.
        return Relative(treat, control, est, math.sqrt(max(var, 0.0)),
                        self.tau2 if self.tau2_estimable else None)

    def league(self) -> list[Relative]:
        """Every ordered pair of different treatments, row treatment versus column."""
        return [self.relative(a, b) for a in self.treatments for b in self.treatments
                if a != b]

    def ranking(self) -> list[tuple[str, float]]:
        """Treatments by P-score, best first (ties: the order of ``treatments``)."""
        order = {t: i for i, t in enumerate(self.treatments)}
        return sorted(self.p_scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))

    def to_json(self) -> dict[str, Any]:
        return clean_json({
            "method": self.method, "ci": "wald", "reference": self.reference,
            "treatments": self.treatments, "studies": self.studies,
            "contrasts": len(self.contrasts), "tau2": self.tau2,
            "tau2_estimable": self.tau2_estimable, "i2": self.i2,
            "q_total": self.q_total.to_json(), "q_within_designs": self.q_within.to_json(),
            "q_between_designs": self.q_between.to_json(),
            "q_between_designs_random": (self.q_between_random.to_json()
                                         if self.q_between_random is not None else None),
            "tau2_within_designs": self.tau2_within_designs,
            "versus_reference": [self.relative(t, self.reference).to_json()
                                 for t in self.treatments[1:]],
            "league": [r.to_json() for r in self.league()],
            "ranking": [{"treatment": t, "p_score": p} for t, p in self.ranking()],
            "splits": [s.to_json() for s in self.splits],
            "disconnected": [{"study": c.study, "treat": c.treat, "control": c.control}
                             for c in self.disconnected],
            "notes": self.notes,
        })


# ----------------------------------------------------------------------------- input checks
def _validate(contrasts: Sequence[Contrast]) -> None:
    if not contrasts:
        raise PoolingError("nothing to analyse: no contrasts", hint="give at least one trial")
    for c in contrasts:
        where = f"trial {c.study!r} ({c.treat} vs {c.control})"
        if not c.study.strip() or not c.treat.strip() or not c.control.strip():
            raise PoolingError(f"{where}: trial and both treatments must be named")
        if c.treat == c.control:
            raise PoolingError(f"{where}: a treatment cannot be compared with itself",
                               hint="map the two arms to different treatments")
        if not math.isfinite(c.log_hr):
            raise PoolingError(f"{where}: log HR is {c.log_hr} (not a finite number)")
        if not (math.isfinite(c.se) and c.se > 0):
            raise PoolingError(f"{where}: standard error {c.se} must be a positive finite "
                               "number")


def _star(rows: list[Contrast]) -> list[Contrast]:
    """A trial's contrasts oriented against their one common arm (see the module docstring);
    a two-arm trial's single contrast is returned as given."""
    study = rows[0].study
    pairs = [frozenset((c.treat, c.control)) for c in rows]
    if len(set(pairs)) != len(pairs):
        raise PoolingError(f"trial {study!r} gives the same pair of treatments twice",
                           hint="one estimate per pair of arms")
    if len(rows) == 1:
        return rows
    common = set.intersection(*(set(p) for p in pairs))
    if len(common) != 1:
        raise PoolingError(f"trial {study!r}: its {len(rows)} contrasts do not share one arm",
                           hint="a multi-arm trial contributes its arms against one common arm")
    arm = next(iter(common))
    return [c if c.control == arm else c.flipped() for c in rows]


def connected_parts(names: Iterable[str], pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Union-find: each name's representative, the same for names joined by ``pairs`` (the
    treatments a network can compare; the plot marks a network that falls apart)."""
    parent = {name: name for name in names}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    return {name: find(name) for name in parent}


# ----------------------------------------------------------------------------- matrices
def _design(contrasts: Sequence[Contrast], treatments: Sequence[str]) -> np.ndarray:
    """+1 at the contrast's treatment, −1 at its control; the first treatment is the
    reference and has no column."""
    col = {t: i - 1 for i, t in enumerate(treatments)}
    x = np.zeros((len(contrasts), len(treatments) - 1))
    for r, c in enumerate(contrasts):
        if col[c.treat] >= 0:
            x[r, col[c.treat]] += 1.0
        if col[c.control] >= 0:
            x[r, col[c.control]] -= 1.0
    return x


def _same_study(contrasts: Sequence[Contrast]) -> np.ndarray:
    """1 where two different rows belong to the same trial (they share its common arm)."""
    names = np.array([c.study for c in contrasts], dtype=object)
    same = (names[:, None] == names[None, :]).astype(float)
    np.fill_diagonal(same, 0.0)
    return same


def _shared_arm_cov(se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Covariance of every two contrasts sharing an arm, and where it was capped.

    The covariance of A vs P and B vs P of one trial is the variance of their shared arm P,
    which is part of each contrast's variance (v_A = var P + var A). Correlation ½ (half the
    geometric mean, ½·se_A·se_B) is exact when the arms' variances are equal; when se_B is
    more than twice se_A it exceeds v_A, which would leave arm A a negative variance. There
    the shared arm's variance is capped at min(v_A, v_B), the largest it can be. Why this
    cap: it leaves every covariance the geometric-mean rule can give unchanged (so the fit
    stays metafor's ``rho = 1/2`` wherever that is possible at all), it is continuous in the
    SEs (at se_B = 2·se_A both rules give v_A), and a smaller cap (say ½·min(v_A, v_B), the
    equal-arms assumption for the better-informed pair) would change every trial whose SEs
    differ at all. The capped 2 × 2 block stays positive definite (v_A < √(v_A·v_B) when
    v_B > 4·v_A); the better-informed contrast's other arm is then taken as exactly known,
    so in Rücker's weighting B vs P is carried whole by B vs A and A vs P and takes no
    weight of its own (``_pairwise`` notes that)."""
    var = se**2
    geometric = SHARED_ARM_CORRELATION * np.outer(se, se)
    limit = np.minimum.outer(var, var)
    return np.minimum(geometric, limit), geometric > limit


def _within_cov(se: np.ndarray, same: np.ndarray) -> np.ndarray:
    return np.diag(se**2) + same * _shared_arm_cov(se)[0]


def _capped_notes(contrasts: Sequence[Contrast]) -> list[str]:
    """A fit note per trial whose shared-arm covariance was capped (``_shared_arm_cov``)."""
    by_study: dict[str, list[Contrast]] = defaultdict(list)
    for c in contrasts:
        by_study[c.study].append(c)
    notes: list[str] = []
    for study, rows in by_study.items():
        if len(rows) < 2:
            continue
        capped = _shared_arm_cov(np.array([c.se for c in rows]))[1]
        for i, j in zip(*np.nonzero(np.triu(capped, 1)), strict=True):
            lo, hi = sorted((rows[int(i)], rows[int(j)]), key=lambda c: c.se)
            notes.append(
                f"trial {study}: the SE of {hi.treat} vs {hi.control} ({hi.se:.3g}) is more "
                f"than twice that of {lo.treat} vs {lo.control} ({lo.se:.3g}), so correlation "
                f"½ would give their shared arm more variance than {lo.treat} vs "
                f"{lo.control} has in all; their covariance is capped at that variance "
                f"({lo.se**2:.3g})")
    return notes


def _gls(y: np.ndarray, x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Generalised least squares: coefficients, their covariance, residual Q."""
    w = np.linalg.inv(v)
    info = x.T @ w @ x
    cov = np.linalg.inv(info)
    beta = cov @ (x.T @ w @ y)
    r = y - x @ beta
    return beta, cov, float(r @ w @ r)


def _by_design(contrasts: Sequence[Contrast]) -> dict[tuple[str, ...], list[int]]:
    """The rows of each design (the set of treatments a trial compares)."""
    by_design: dict[tuple[str, ...], list[int]] = defaultdict(list)
    arms: dict[str, set[str]] = defaultdict(set)
    for c in contrasts:
        arms[c.study] |= {c.treat, c.control}
    for i, c in enumerate(contrasts):
        by_design[tuple(sorted(arms[c.study]))].append(i)
    return by_design


def _interaction_design(contrasts: Sequence[Contrast]) -> np.ndarray:
    """Design matrix of the full design-by-treatment interaction model: every design has its
    own treatment effects (a column per arm of the design but its first)."""
    blocks = []
    for design, rows in _by_design(contrasts).items():
        block = np.zeros((len(contrasts), len(design) - 1))
        block[rows, :] = _design([contrasts[i] for i in rows], design)
        blocks.append(block)
    return np.hstack(blocks)


def _q_between_random(y: np.ndarray, x: np.ndarray, s: np.ndarray, p: np.ndarray,
                      contrasts: Sequence[Contrast], df: int) -> tuple[QTest, float]:
    """Q between designs of a random-effects network (Krahn et al. 2013; netmeta's
    ``decomp.design`` ``Q.inc.random``) and the τ² it is taken under.

    The common-effect Q between designs (Q − Q within) reads heterogeneity between trials of a
    design as disagreement between designs. Here τ² is the REML estimate of the full
    design-by-treatment interaction model (heterogeneity within designs only: each design has
    its own effects, so inconsistency cannot inflate it); with V = S + τ²·P, Q between designs
    is the consistency model's Q minus the interaction model's Q, the Wald test of the
    interaction (inconsistency) parameters, on the same df as the common-effect one."""
    xi = _interaction_design(contrasts)
    tau2 = _tau2_reml(y, xi, s, p)
    v = s + tau2 * p
    _, _, q_consistent = _gls(y, x, v)
    _, _, q_interaction = _gls(y, xi, v) if xi.shape[1] < len(y) else (None, None, 0.0)
    return QTest(max(q_consistent - q_interaction, 0.0), df), tau2


def _q_within_designs(contrasts: Sequence[Contrast], s: np.ndarray) -> QTest:
    """Residual Q of the design-by-treatment interaction model: each design (the set of
    treatments a trial compares) pooled on its own, common effect."""
    by_design = _by_design(contrasts)
    q, df = 0.0, 0
    for design, rows in by_design.items():
        sub = [contrasts[i] for i in rows]
        x = _design(sub, design)
        idx = np.array(rows)
        y = np.array([c.log_hr for c in sub])
        if len(rows) > x.shape[1]:
            _, _, q_d = _gls(y, x, s[np.ix_(idx, idx)])
            q += q_d
            df += len(rows) - x.shape[1]
    return QTest(max(q, 0.0), df)


# ----------------------------------------------------------------------------- τ² (REML)
def _tau2_reml(y: np.ndarray, x: np.ndarray, s: np.ndarray, p: np.ndarray) -> float:
    """REML τ² of V = S + τ² P (P: 1 on the diagonal, ½ between rows of one trial)."""

    def q_matrix(t: float) -> np.ndarray:
        w = np.linalg.inv(s + t * p)
        wx = w @ x
        return w - wx @ np.linalg.inv(x.T @ wx) @ wx.T

    def score(t: float) -> float:
        # 2 × d/dτ² of the restricted log-likelihood: y'QPQy − tr(QP)
        q = q_matrix(t)
        qy = q @ y
        return float(qy @ p @ qy - np.trace(q @ p))

    def scores(grid: np.ndarray) -> np.ndarray:
        return np.array([score(float(t)) for t in grid])

    def loglik(t: float) -> float:
        v = s + t * p
        w = np.linalg.inv(v)
        info = x.T @ w @ x
        beta = np.linalg.solve(info, x.T @ w @ y)
        r = y - x @ beta
        return -0.5 * float(np.linalg.slogdet(v)[1] + np.linalg.slogdet(info)[1]
                            + r @ w @ r)

    if len(y) <= x.shape[1]:
        return 0.0  # no residual degrees of freedom: τ² is not identified
    return reml_maximum(score, scores, loglik, y, np.diag(s), points=60)


# ----------------------------------------------------------------------------- the model
def network_meta_analysis(contrasts: Sequence[Contrast], *, reference: str | None = None,
                          method: str = "REML") -> NetworkResult:
    """Fit the network of ``contrasts`` (see the module docstring).

    ``reference``: the treatment every effect is expressed against (default: the one in most
    contrasts). Trials not connected to the reference's part of the network are left out and
    returned in ``disconnected``. Raises :class:`store.errors.PoolingError` for malformed
    contrasts, a multi-arm trial whose contrasts do not share an arm, an unknown reference or
    method, and a network with fewer than two connected treatments.
    """
    if method not in NETWORK_METHODS:
        raise PoolingError(f"unknown network method {method!r}",
                           hint=f"use one of {', '.join(NETWORK_METHODS)}")
    _validate(contrasts)
    by_study: dict[str, list[Contrast]] = defaultdict(list)
    for c in contrasts:
        by_study[c.study].append(c)
    oriented = [row for rows in by_study.values() for row in _star(rows)]

    seen = list(dict.fromkeys(t for c in oriented for t in (c.treat, c.control)))
    if reference is None:
        counts = {t: sum(t in (c.treat, c.control) for c in oriented) for t in seen}
        reference = max(seen, key=lambda t: counts[t])  # ties: first seen
    elif reference not in seen:
        raise PoolingError(f"reference treatment {reference!r} is in no trial of this network",
                           hint=f"its treatments: {', '.join(seen)}")
    comp = connected_parts(seen, ((c.treat, c.control) for c in oriented))
    kept = [c for c in oriented if comp[c.treat] == comp[reference]]
    disconnected = [c for c in oriented if comp[c.treat] != comp[reference]]
    treatments = [reference] + [t for t in seen if t != reference and comp[t] == comp[reference]]
    if len(treatments) < 2:
        raise PoolingError("nothing to compare: fewer than two connected treatments")

    y = np.array([c.log_hr for c in kept])
    se = np.array([c.se for c in kept])
    x = _design(kept, treatments)
    same = _same_study(kept)
    s = _within_cov(se, same)
    p = np.eye(len(kept)) + 0.5 * same

    _, _, q_fe = _gls(y, x, s)
    df_total = len(kept) - x.shape[1]
    q_total = QTest(max(q_fe, 0.0), df_total)
    q_within = _q_within_designs(kept, s)
    q_between = QTest(max(q_total.q - q_within.q, 0.0), df_total - q_within.df)

    q_between_random = tau2_within = None
    if method == "REML":
        q_between_random, tau2_within = _q_between_random(y, x, s, p, kept, q_between.df)
    tau2 = _tau2_reml(y, x, s, p) if method == "REML" else 0.0
    basic, cov, _ = _gls(y, x, s + tau2 * p)
    notes: list[str] = []
    if df_total == 0 and method == "REML":
        notes.append("as many contrasts as treatment effects: τ² cannot be estimated and is "
                     "taken as 0")
    notes.extend(_capped_notes(kept))
    if disconnected:
        names = sorted({c.study for c in disconnected})
        notes.append(f"{plural(len(names), 'trial')} not connected to {reference}: "
                     f"{', '.join(names)}")

    result = NetworkResult(
        method=method, reference=reference, treatments=treatments, contrasts=kept,
        studies=len({c.study for c in kept}), tau2=tau2, basic=basic, cov=cov,
        q_total=q_total, q_within=q_within, q_between=q_between, p_scores={}, splits=[],
        disconnected=disconnected, notes=notes, q_between_random=q_between_random,
        tau2_within_designs=tau2_within)
    result.p_scores = _p_scores(result)
    result.splits = _splits(result, kept, tau2)
    log.debug("network of %d trials, %d treatments fitted (%s): tau2 %.4g, Q %.3g on %d df",
              result.studies, len(treatments), method, tau2, q_total.q, q_total.df)
    return result


def _p_scores(res: NetworkResult) -> dict[str, float]:
    """P-scores with a lower HR better (maintenance wants fewer events)."""
    out: dict[str, float] = {}
    n = len(res.treatments)
    for a in res.treatments:
        total = 0.0
        for b in res.treatments:
            if a == b:
                continue
            rel = res.relative(a, b)  # log HR of a vs b: negative means a is better
            total += float(stats.norm.cdf(-rel.log_hr / rel.se)) if rel.se > 0 else (
                1.0 if rel.log_hr < 0 else 0.0 if rel.log_hr > 0 else 0.5)
        out[a] = total / (n - 1)
    return out


def rucker_variances(pair_var: np.ndarray) -> np.ndarray:
    """Rücker's (2012) variances for a multi-arm trial's pairs taken as independent.

    ``pair_var`` is the a × a matrix of var(y_i − y_j) between the trial's arms (0 on the
    diagonal). Read as effective resistances of an electrical network on the arms, it gives
    the network's Laplacian pseudo-inverse L⁺ = −½·C·V·C (C = I − J/a, J all ones); the
    Laplacian L is its pseudo-inverse, and −L_ij is the weight (conductance) of pair ij, so
    its variance is 1/(−L_ij). Pairs weighted so reproduce the trial's own pairwise variances
    as a whole, instead of counting it once per pair. A weight that comes out zero (a trial
    whose shared-arm covariance is at its cap, ``_shared_arm_cov``, with no τ²; rounding
    decides its sign there, hence the relative tolerance) or negative is returned as
    infinity: that pair takes nothing from the trial (netmeta sets small negative weights to 0
    and warns about the others)."""
    a = pair_var.shape[0]
    centre = np.eye(a) - np.ones((a, a)) / a
    laplacian = np.linalg.pinv(-0.5 * centre @ pair_var @ centre)
    weight = -laplacian
    out = np.full((a, a), math.inf)
    positive = weight > 1e-9 * np.max(np.abs(weight))
    out[positive] = 1.0 / weight[positive]
    np.fill_diagonal(out, 0.0)
    return out


def _pairwise(kept: Sequence[Contrast], tau2: float) -> tuple[list[tuple[Contrast, float]],
                                                               list[tuple[str, str, str]]]:
    """Every pair of arms each trial randomised, with the variance its direct pool weights
    it by (τ² included). A two-arm trial's contrast is as fitted, variance v + τ². A trial of
    A, B and P enters as A vs P and B vs P; A vs B, randomised in it too, is their difference
    y_A − y_B. Its pairwise variances are the model's own: v_A + v_B − 2·cov(A, B) within the
    trial (``_within_cov``) and τ² between trials for every pair (τ² + τ² − 2·τ²/2 under
    ``P``); Rücker's method (``rucker_variances``) then makes them independent pairs that
    count the trial once, as netmeta's ``netsplit`` does. A pair whose weight is not positive
    is left out (its variance would be infinite) and returned, as (trial, arm, arm), in the
    second list."""
    by_study: dict[str, list[Contrast]] = defaultdict(list)
    for c in kept:
        by_study[c.study].append(c)
    out: list[tuple[Contrast, float]] = []
    dropped: list[tuple[str, str, str]] = []
    for rows in by_study.values():
        if len(rows) < 2:
            out.extend((c, c.se**2 + tau2) for c in rows)
            continue
        # arm 0 is the common arm (``_star``), arm i + 1 the treatment of rows[i]
        se = np.array([c.se for c in rows])
        v = _within_cov(se, 1.0 - np.eye(len(rows)))
        v0 = np.zeros((len(rows) + 1, len(rows) + 1))
        v0[1:, 1:] = v  # covariance of each arm's contrast against the common arm
        d = np.diag(v0)
        pair_var = d[:, None] + d[None, :] - 2.0 * v0 + tau2
        np.fill_diagonal(pair_var, 0.0)
        var = rucker_variances(pair_var)
        common = rows[0].control
        arms = [common] + [c.treat for c in rows]
        y = [0.0] + [c.log_hr for c in rows]
        n = [rows[0].n_control] + [c.n_treat for c in rows]
        for i in range(1, len(arms)):
            for j in range(i):
                if math.isfinite(var[i, j]):
                    out.append((Contrast(rows[0].study, arms[i], arms[j], y[i] - y[j],
                                         math.sqrt(var[i, j]), None, n[i], n[j],
                                         rows[0].label), float(var[i, j])))
                else:
                    dropped.append((rows[0].study, arms[i], arms[j]))
    return out, dropped


def _splits(res: NetworkResult, kept: Sequence[Contrast], tau2: float) -> list[Split]:
    """Direct and back-calculated indirect evidence for every pair some trial randomised."""
    # Back-calculation is exact only when every trial has two arms (König et al. 2013).
    multi = any(n > 1 for n in Counter(c.study for c in kept).values())
    order = {t: i for i, t in enumerate(res.treatments)}
    pairs: dict[tuple[str, str], list[tuple[Contrast, float]]] = defaultdict(list)
    weighted, dropped = _pairwise(kept, tau2)
    for c, var in weighted:
        # one orientation per pair: the later treatment versus the earlier one
        row = c if order[c.treat] > order[c.control] else c.flipped()
        pairs[(row.treat, row.control)].append((row, var))
    out: list[Split] = []
    for (a, b), rows in sorted(pairs.items(), key=lambda kv: (order[kv[0][1]], order[kv[0][0]])):
        w = np.array([1.0 / var for _, var in rows])
        direct = float(np.sum(w * np.array([r.log_hr for r, _ in rows])) / np.sum(w))
        direct_var = 1.0 / float(np.sum(w))
        net = res.relative(a, b)
        net_var = net.se**2
        gain = 1.0 / net_var - 1.0 / direct_var
        indirect = indirect_se = None
        # Precision the network adds beyond the direct trials; ~0 when there is no other path.
        # Rücker's weights leave part of a multi-arm trial's information on A vs B in its other
        # pairs (A vs P, P vs B), which netsplit counts as indirect, as we do: a lone A/B/P
        # trial has an indirect A vs B through P that agrees with its direct one (p = 1).
        if gain > 1e-9 / net_var:
            ind_var = 1.0 / gain
            indirect = ind_var * (net.log_hr / net_var - direct / direct_var)
            indirect_se = math.sqrt(ind_var)
        out.append(Split(a, b, len(rows), direct, math.sqrt(direct_var), indirect,
                         indirect_se, net.log_hr, net.se,
                         approximate=multi))
    for study, a, b in dropped:
        listed = (a, b) in pairs or (b, a) in pairs
        res.notes.append(
            f"trial {study}: its {a} vs {b} takes no weight of its own in the direct and "
            "indirect evidence (its Rücker weight is not positive: the trial's other pairs "
            "carry that information)"
            + ("" if listed else f"; no other trial compares {a} with {b}, so the pair has "
               "no row there"))
    return out
