"""Sequential monitoring of a living meta-analysis (trial sequential analysis), *monitoring only*.

Re-testing a pooled estimate every time a trial lands inflates the chance of a false "significant"
result two- to five-fold (Simmonds 2017; DOMAIN.md). The primary analysis stays conventional
(REML + HKSJ); this module adds the view Cochrane allows beside it: the cumulative Z-curve
against group-sequential monitoring boundaries, as in trial sequential analysis (Wetterslev
2008, 2009; Thorlund et al. 2011, the TSA manual).

The plan (:class:`MonitoringPlan`) is the effect the review wants to be able to detect
(``anticipated_hr``), the two-sided α and the power. From it:

* **Required information.** On the log-HR scale the information a fixed-effect meta-analysis
  needs is ``I = ((z₁₋α/₂ + z₁₋β) / ln HR)²`` (Schoenfeld: for a 1:1 trial, the variance of a
  log HR is about 4 / events, so ``4·I`` is the number of events). Heterogeneity needs more:
  ``I / (1 − D²)``, with the *diversity* ``D² = 1 − V_F / V_R`` of the latest meta-analysis
  (Wetterslev 2009; ``V`` the variance of the fixed- and random-effects pooled estimate).
* **Accrued information** at each step of the evidence-over-time view is the fixed-effect
  information ``Σ 1/seᵢ²`` (events / 4), so it grows as trials and longer follow-up arrive,
  and the information fraction is the ratio of the two.
* **The Z-curve** is the random-effects pooled log HR over its Wald SE, with the analysis' own
  τ² estimator (HKSJ's t reference has no Brownian-motion form; TSA uses Wald too). Z < 0
  favours maintenance.
* **Boundaries**: Lan–DeMets α-spending with the O'Brien–Fleming-type function of the TSA
  manual, ``α(t) = 2 − 2Φ(z₁₋α/₂ / √t)`` (Lan & DeMets 1983, two-sided form), computed at the
  observed information fractions by the recursive numerical integration of Armitage, McPherson
  and Rowe (1969) on the Brownian-motion scale. Checked against R rpact in the tests.

Once the required information is reached the boundary there spends what α is left; later
steps are held to that final boundary (the plan is complete: a new plan needs a smaller
anticipated effect; but evidence that goes past the final boundary is said, not hidden behind
the look that completed the plan).
Nothing here changes the primary estimate; the words say "monitoring only".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from reports.meta import meta_analysis
from reports.words import rounded
from store.errors import PoolingError
from store.settings import MONITORING_HR_RULE, is_monitorable_hr

Spending = Callable[[float, float], float]

# Below this much α at one look the grid integral has no relative precision left; the crossing
# probability is then, to far better than that, the single-look tail (earlier crossings are
# even rarer), which has a closed form.
_TINY_ALPHA = 1e-10
_GRID = 201  # odd (Simpson's rule); at 201 points the boundaries agree with rpact to 1e-7


@dataclass(frozen=True)
class MonitoringPlan:
    """What the monitoring is powered to detect."""

    anticipated_hr: float = 0.80
    alpha: float = 0.05
    power: float = 0.80

    def __post_init__(self) -> None:
        if not is_monitorable_hr(self.anticipated_hr):
            raise PoolingError(
                f"anticipated HR {self.anticipated_hr} cannot be monitored",
                hint=f"give the smallest effect worth detecting: {MONITORING_HR_RULE}")
        if not 0 < self.alpha < 0.5:
            raise PoolingError(f"monitoring α {self.alpha} is outside (0, 0.5)")
        if not 0.5 <= self.power < 1:
            raise PoolingError(f"monitoring power {self.power} is outside [0.5, 1)")

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    def required_information(self) -> float:
        """Fixed-effect information (1/variance of the log HR) without heterogeneity."""
        z = stats.norm.isf(self.alpha / 2) + stats.norm.isf(1 - self.power)
        return float((z / math.log(self.anticipated_hr)) ** 2)


def obrien_fleming_spending(t: float, alpha: float) -> float:
    """Cumulative two-sided α spent at information fraction ``t`` (TSA manual's form)."""
    if t <= 0:
        return 0.0
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(min(t, 1.0))))


def _simpson_weights(n: int, step: float) -> np.ndarray:
    weights = np.ones(n)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights * step / 3


def _crossing(b: float, t: float, delta: float, grid: np.ndarray, density: np.ndarray) -> float:
    """P(first crossing of ±b at the look at ``t``): the previous look's continuation density
    of S on ``grid`` times the probability that the increment N(0, delta) leaves (−c, c)."""
    c, sd = b * math.sqrt(t), math.sqrt(delta)
    tail = stats.norm.cdf((-c - grid) / sd) + stats.norm.sf((c - grid) / sd)
    return float(np.dot(_simpson_weights(len(grid), float(grid[1] - grid[0])), density * tail))


def monitoring_boundaries(fractions: Sequence[float], alpha: float = 0.05,
                          spending: Spending = obrien_fleming_spending) -> list[float | None]:
    """Two-sided Z boundaries at strictly increasing information ``fractions``.

    Look k rejects when ``|Z_k| ≥ b_k``; under H0 the probability of first crossing at look k
    is ``spending(t_k) − spending(t_{k−1})``. Fractions above 1 are information beyond the
    plan: the first of them spends what is left of α; any after it is held to that final
    boundary. (Those later looks had none, and the verdict kept saying "an effect as large as
    the plan's is unlikely" from the look that completed the plan while the evidence since
    went far past it: Z −4.77 against a final boundary of 1.96.)
    """
    ts = [float(t) for t in fractions]
    if any(not math.isfinite(t) or t <= 0 for t in ts) or any(
            b <= a for a, b in itertools.pairwise(ts)):
        raise PoolingError("information fractions must be positive and strictly increasing",
                           hint=f"got {ts}")
    bounds: list[float | None] = []
    spent = 0.0
    # Density of the Brownian motion S = Z·√t on its continuation region at the last look
    # that had a boundary; None before the first look.
    grid: np.ndarray | None = None
    density: np.ndarray | None = None
    t_prev = 0.0
    final: float | None = None  # the boundary of the look that completed the plan
    for t in ts:
        if t_prev >= 1.0:  # the plan is complete: its final boundary holds from here on
            bounds.append(final)
            continue
        target = spending(t, alpha) - spent
        if target <= 0:  # nothing to spend yet
            bounds.append(None)
            continue
        delta = t - t_prev
        if density is None or grid is None:
            b = float(stats.norm.isf(target / 2))  # one look: the exact tail
        elif target < _TINY_ALPHA:
            b = float(stats.norm.isf(target / 2))
        else:
            b = float(optimize.brentq(
                lambda bz: _crossing(bz, t, delta, grid, density) - target,  # noqa: B023
                1e-6, float(stats.norm.isf(target / 2)) + 1.0, xtol=1e-10))
        bounds.append(b)
        final = b
        spent += target
        # Carry the density of S over the continuation region (-c, c) to this look.
        c = b * math.sqrt(t)
        width = min(c, 12.0 * math.sqrt(t))
        new_grid = np.linspace(-width, width, _GRID)
        if density is None or grid is None:
            new_density = stats.norm.pdf(new_grid / math.sqrt(t)) / math.sqrt(t)
        else:
            kernel = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / math.sqrt(delta))
            weights = _simpson_weights(len(grid), float(grid[1] - grid[0]))
            new_density = (kernel @ (weights * density)) / math.sqrt(delta)
        grid, density, t_prev = new_grid, new_density, t
    return bounds


# ----------------------------------------------------------------------------- one analysis
def _fit(step: dict[str, Any], method: str) -> tuple[float, float, float]:
    """(random-effects log HR, its Wald SE, fixed-effect information) of one step."""
    yi = [s["yi"] for s in step["studies"]]
    sei = [s["sei"] for s in step["studies"]]
    res = meta_analysis(yi, sei, method=method, ci="wald", tau2_ci=False)
    return res.estimate, res.se, float(sum(1.0 / s**2 for s in sei))


def monitor(steps: Sequence[dict[str, Any]], plan: MonitoringPlan, *, method: str,
            primary_ci: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """The monitoring view of one analysis from its evidence-over-time ``steps``
    (:func:`reports.pool.cumulative_by_publication`), or None when there are none.

    ``primary_ci`` is the primary analysis' 95% CI (log scale). When the Z-curve claims firm
    evidence that this CI does not show, the view says so (``primary_disagrees``): with few
    trials the two disagree by construction — the Z-curve is referred to the normal
    distribution, HKSJ to t with k − 1 degrees of freedom (12.7 rather than 1.96 for two
    trials) — and a reader must not take the boundary as the stronger claim.
    """
    if not steps:
        return None
    fits = [_fit(step, method) for step in steps]
    _, se_last, info_last = fits[-1]
    # Diversity of the latest meta-analysis (Wetterslev 2009): 0 for a fixed-effect model.
    diversity = max(0.0, 1.0 - (1.0 / info_last) / se_last**2) if method != "FE" else 0.0
    required = plan.required_information() / (1.0 - diversity) if diversity < 1 else math.inf
    looks: list[dict[str, Any]] = []
    fractions: list[float] = []
    for step, (est, se, info) in zip(steps, fits, strict=True):
        t = info / required
        looks.append({"date": step["date"], "date_label": step["date_label"],
                      "k": step["k"], "information": info, "fraction": t,
                      "events_equivalent": 4.0 * info, "z": est / se if se > 0 else math.nan,
                      "boundary": None, "new_look": not fractions or t > fractions[-1]})
        if looks[-1]["new_look"]:
            fractions.append(t)
    # A step that adds no information (a trial left, a cut with fewer events) is shown but is
    # not a new look: the boundaries need increasing information.
    bounds = iter(monitoring_boundaries(fractions, plan.alpha)) if fractions else iter(())
    for look in looks:
        if look["new_look"]:
            look["boundary"] = next(bounds)
    return _verdict(looks, plan, required, diversity, primary_ci)


def _evidence_of(look: dict[str, Any]) -> str:
    """The evidence of one look in words: "the evidence of 2017-02-28", or for the look of
    the estimates without a date (counted from the first row on) "the undated evidence", not
    "the evidence of undated"."""
    if look.get("date") is None:
        return "the undated evidence (estimates without a data cut or report year)"
    return f"the evidence of {look['date_label']}"


def _verdict(looks: list[dict[str, Any]], plan: MonitoringPlan, required: float,
             diversity: float, primary_ci: tuple[float, float] | None) -> dict[str, Any]:
    z_conv = float(stats.norm.isf(plan.alpha / 2))
    crossed = next((lk for lk in looks
                    if lk["boundary"] is not None and abs(lk["z"]) >= lk["boundary"]), None)
    last = looks[-1]
    current = next((lk["boundary"] for lk in reversed(looks) if lk["boundary"] is not None),
                   None)
    reached = next((lk for lk in looks if lk["fraction"] >= 1.0), None)
    favours = "maintenance" if last["z"] < 0 else "control"
    disagrees = False
    if crossed is not None:
        side = "maintenance" if crossed["z"] < 0 else "control"
        status = "firm_evidence"
        text = (f"The Z-curve crossed the monitoring boundary with {_evidence_of(crossed)} "
                f"(Z = {rounded(crossed['z'])}, boundary "
                f"±{rounded(crossed['boundary'])}): firm evidence favouring {side}.")
        if reached is not None and reached is not crossed and reached["date"] != crossed["date"]:
            text += (f" The required information had been reached with {_evidence_of(reached)} "
                     "without a crossing; the later evidence went past the plan's final "
                     "boundary.")
        # Later evidence can pull the curve back; a living review must say so rather than
        # keep repeating a crossing that no longer holds. A latest step that adds no
        # information has no boundary of its own: it is read against the boundary in force,
        # that of the last look (never the conventional 1.96, which is far lower early on).
        limit = current if current is not None else z_conv
        if last is not crossed and abs(last["z"]) < limit:
            text += (f" The latest Z ({rounded(last['z'])}) is back inside "
                     + (f"the boundary (±{rounded(current)})." if current is not None
                        else f"the conventional ±{rounded(z_conv)}."))
        disagrees = primary_ci is not None and primary_ci[0] <= 0.0 <= primary_ci[1]
        if disagrees:
            text += (" The primary analysis' 95% CI still includes no effect: with few trials "
                     "the monitoring's normal reference is more optimistic than the primary "
                     "analysis.")
    elif reached is not None:
        status = "required_information_reached"
        text = (f"The required information was reached with {_evidence_of(reached)} without "
                f"crossing the boundary: an effect as large as HR {plan.anticipated_hr:g} is "
                "unlikely.")
    elif abs(last["z"]) >= z_conv:
        status = "conventional_only"
        text = (f"Conventionally significant (|Z| = {rounded(abs(last['z']))} ≥ "
                f"{rounded(z_conv)}) but inside the monitoring boundary"
                + (f" (±{rounded(current)})" if current is not None else "")
                + f", with {rounded(100 * last['fraction'], 0)}% of the required "
                "information: possibly a false positive of repeated testing.")
    else:
        status = "open"
        text = (f"Not significant (Z = {rounded(last['z'])}), "
                f"{rounded(100 * last['fraction'], 0)}% of the required information: more "
                "evidence is needed.")
    return {
        "plan": plan.to_json(),
        "required_information": required,
        "required_events": 4.0 * required,
        "diversity": diversity,
        "fraction": last["fraction"],
        "z": last["z"],
        "boundary": current,
        "favours": favours,
        "status": status,
        "primary_disagrees": disagrees,
        "text": text + " Monitoring only; the primary analysis is the pooled estimate above.",
        "looks": looks,
    }

