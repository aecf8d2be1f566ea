"""Absolute effects for the summary of findings: a pooled HR turned into events per 1000
patients at a time point, from an assumed control-arm risk (``store.baselines``).

GRADE guidance 27 (Skoetz et al., J Clin Epidemiol 2020;118:124-131) for time-to-event
outcomes: under proportional hazards the event-free proportion with maintenance at time t is
the control one raised to the power of the HR, S_m(t) = S_c(t)^HR, so the event risks are

    risk_c = 1 − S_c(t)        risk_m = 1 − S_c(t)^HR

and the absolute effect is risk_m − risk_c per 1000 patients. The HR's CI limits give the
limits of risk_m and of the difference (the assumed control risk is taken as known, as GRADE's
tables do). The result inherits the HR's assumption of proportional hazards up to t.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from reports.presentation import one_trial_numbers
from reports.words import rounded
from store.errors import PoolingError
from store.models import BaselineRisk, PooledResult

#: What an event is, in words, per analysis endpoint (PFS analyses pool EFS and TTP too).
EVENT_WORDS = {"PFS": "progressed or died", "OS": "died"}
PER = 1000

log = logging.getLogger(__name__)


def absolute_effect(*, hr: float, hr_ci_low: float, hr_ci_high: float, event_free: float,
                    months: float, endpoint: str) -> dict[str, Any]:
    """Events per 1000 without and with maintenance at ``months`` and their difference.

    ``event_free`` is the control arm's event-free proportion at ``months`` (0 < S < 1).
    Numbers are kept unrounded; ``text`` rounds them to whole patients per 1000, as a summary
    of findings table does. Raises :class:`PoolingError` for an HR or CI that is not a
    positive finite number in order, or a proportion outside (0, 1).
    """
    for name, value in (("hr", hr), ("hr_ci_low", hr_ci_low), ("hr_ci_high", hr_ci_high)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise PoolingError(f"{name} {value!r} must be a positive finite number")
    if not hr_ci_low <= hr <= hr_ci_high:
        raise PoolingError(f"HR {hr} is not inside its CI {hr_ci_low}–{hr_ci_high}")
    if not 0 < event_free < 1:
        raise PoolingError(f"control event-free proportion {event_free!r} must be in (0, 1)")
    if endpoint not in EVENT_WORDS:
        raise PoolingError(f"unknown endpoint {endpoint!r}",
                           hint=f"use one of {', '.join(EVENT_WORDS)}")

    def risk(h: float) -> float:
        return PER * (1.0 - event_free ** h)

    control = risk(1.0)
    view = {
        "months": months, "event_free_control": event_free, "endpoint": endpoint,
        "control_per_1000": control,
        "maintenance_per_1000": risk(hr),
        "maintenance_per_1000_ci_low": risk(hr_ci_low),
        "maintenance_per_1000_ci_high": risk(hr_ci_high),
        "difference_per_1000": risk(hr) - control,
        "difference_per_1000_ci_low": risk(hr_ci_low) - control,
        "difference_per_1000_ci_high": risk(hr_ci_high) - control,
    }
    view["text"] = effect_text(view)
    return view


def per_1000(value: float) -> int:
    """A number per 1000 as the summary of findings writes it: a whole number, rounded half
    up as clinical reports do (``reports.words.rounded``). Python's ``round`` rounds half to
    even: a control risk of exactly 876.5 was "876", and "876 … 883 … 6 more" did not add
    up."""
    return int(rounded(value, 0))


_RISKS = ("control_per_1000", "maintenance_per_1000", "maintenance_per_1000_ci_low",
          "maintenance_per_1000_ci_high")


def written_per_1000(view: dict[str, Any]) -> dict[str, int]:
    """The view's numbers per 1000 as written: each risk rounded, and each difference that of
    the rounded risks, so that what a reader sees adds up. Rounding the difference on its own
    wrote "648 … 465 …: 182 fewer" (648 − 465 = 183) for a control risk with two decimals."""
    out = {name: per_1000(view[name]) for name in _RISKS}
    control = out["control_per_1000"]
    for suffix in ("", "_ci_low", "_ci_high"):
        out[f"difference_per_1000{suffix}"] = out[f"maintenance_per_1000{suffix}"] - control
    return out


def _count(diff: float, written: int) -> str:
    """A difference per 1000 in GRADE's words: "170 fewer", "20 more", "0 fewer". ``written``
    is the difference of the rounded risks; the word follows the unrounded ``diff``: 0.4 more
    per 1000 (an HR above 1 at a low risk) is "0 more", not "0 fewer", which would turn a harm
    into a benefit (rounding keeps the order, so the two never point different ways)."""
    return f"{abs(written)} more" if diff > 0 else f"{abs(written)} fewer"


def _months(months: float) -> str:
    """The time point as the table's caption writes it (2.25 months was "2.2" here)."""
    return f"{months:.6g}"


def effect_text(view: dict[str, Any]) -> str:
    """The absolute effect as one sentence of a summary of findings."""
    words = EVENT_WORDS[view["endpoint"]]
    n = written_per_1000(view)
    return (f"At {_months(view['months'])} months, {n['control_per_1000']} per "
            f"{PER} {words} without maintenance (assumed) and "
            f"{n['maintenance_per_1000']} per {PER} with maintenance (95% CI "
            f"{n['maintenance_per_1000_ci_low']} to "
            f"{n['maintenance_per_1000_ci_high']}): "
            f"{_count(view['difference_per_1000'], n['difference_per_1000'])} per {PER} (from "
            f"{_count(view['difference_per_1000_ci_low'], n['difference_per_1000_ci_low'])} to "
            f"{_count(view['difference_per_1000_ci_high'], n['difference_per_1000_ci_high'])}).")


def absolute_view(row: PooledResult, baseline: BaselineRisk | None) -> dict[str, Any] | None:
    """The absolute effect of a stored snapshot with the analysis' current assumed control
    risk, and where that risk comes from; None without an entry or a pooled estimate.

    Raises :class:`PoolingError` when the snapshot's numbers allow no absolute effect.
    Computed when shown, not frozen in the snapshot: the entry (``baseline_id``) and the
    snapshot (``snapshot_id``) together say what it was made from.
    """
    if baseline is None or row.estimate is None or row.ci_low is None or row.ci_high is None:
        return None
    endpoint = row.analysis_key.split("/")[1]
    # One trial shows its HR and CI as printed: the absolute effect is computed from those,
    # not from the limits rebuilt from its SE (383 to 525 beside a CI that gives 382).
    shown = one_trial_numbers(row)
    try:
        hrs = list(shown) if shown else [math.exp(x) for x in (row.estimate, row.ci_low,
                                                               row.ci_high)]
    except OverflowError:  # a log HR beyond ~709: no proportion can be computed from it
        raise PoolingError(f"snapshot {row.id}: the HR or its CI is too large for an "
                           "absolute effect") from None
    view = absolute_effect(hr=hrs[0], hr_ci_low=hrs[1], hr_ci_high=hrs[2],
                           event_free=baseline.event_free, months=baseline.months,
                           endpoint=endpoint)
    view.update({"baseline_id": baseline.id, "baseline_analysis": baseline.analysis_key,
                 "source": baseline.source, "snapshot_id": row.id,
                 "entered_at": baseline.created_at.isoformat() if baseline.created_at else None})
    return view


def absolute_or_reason(row: PooledResult,
                       baseline: BaselineRisk | None) -> tuple[dict[str, Any] | None, str | None]:
    """``absolute_view``, or None and why when the stored numbers allow none (an HR outside
    its CI, one too large to exponentiate): one odd snapshot must not stop a page, an export
    or a digest, so every reader goes through here."""
    try:
        return absolute_view(row, baseline), None
    except PoolingError as exc:
        log.warning("absolute effect of snapshot %s: %s", row.id, exc.one_line())
        return None, exc.one_line()
