"""How people read the sequential-monitoring view: status names, the plan line, and what a
change of status means in words.

The view itself (``PooledResult.result["monitoring"]``) is made by
:func:`reports.sequential.monitor`; the pages (``/estimates``), the graph
(:mod:`reports.monitoring_plot`) and the digest all name it through this module, so the words
are the same everywhere. No plotting here: the digest imports this module at build time and
must not pull in matplotlib for it.

A snapshot stored before monitoring existed has no ``"monitoring"`` key: its status is
*unknown*, and no change is ever claimed from or to an unknown status.
"""

from __future__ import annotations

import math
from typing import Any

from reports.words import hr_number, rounded

#: What each status of :func:`reports.sequential.monitor` is called on pages and in digests.
STATUS_LABELS = {
    "firm_evidence": "firm evidence (boundary crossed)",
    "required_information_reached": "required information reached, boundary not crossed",
    "conventional_only": "conventionally significant only",
    "open": "open (more evidence needed)",
}

_CROSSES = "the Z-curve now crosses the monitoring boundary"
_UNCROSSES = "the Z-curve no longer crosses the monitoring boundary"
_UNREACHED = "the required information is no longer reached"


def status_label(status: str | None) -> str:
    """``"firm evidence (boundary crossed)"``; ``"unknown"`` for a missing status."""
    if not status:
        return "unknown"
    return STATUS_LABELS.get(status, status.replace("_", " "))


def number(value: Any) -> float | None:
    """A finite float, or None (stored JSON turns NaN/inf into null)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def plan_text(plan: Any) -> str:
    """``"HR 0.80, two-sided α 0.05, power 80%"`` (the parts that are recorded)."""
    plan = plan if isinstance(plan, dict) else {}
    parts = []
    if (hr := number(plan.get("anticipated_hr"))) is not None:
        parts.append(f"HR {hr_number(hr)}")
    if (alpha := number(plan.get("alpha"))) is not None:
        parts.append(f"two-sided α {alpha:g}")
    if (power := number(plan.get("power"))) is not None:
        parts.append(f"power {rounded(100 * power, 0)}%")
    return ", ".join(parts) or "not recorded"


def plan_line(monitoring: dict[str, Any]) -> str:
    """``"Plan: HR 0.80, two-sided α 0.05, power 80%; D² = 12%; required information 631
    events"`` from a monitoring view (missing parts are left out)."""
    text = "Plan: " + plan_text(monitoring.get("plan"))
    if (diversity := number(monitoring.get("diversity"))) is not None:
        text += f"; D² = {rounded(100 * diversity, 0)}%"
    if (events := number(monitoring.get("required_events"))) is not None:
        text += f"; required information {rounded(events, 0)} events"
    return text


def status_change(old: str | None, new: str | None) -> str | None:
    """What moving from status ``old`` to ``new`` means, in words; None when either is
    unknown or they are the same."""
    if not old or not new or old == new:
        return None
    if new == "firm_evidence":
        return _CROSSES
    lost = {"firm_evidence": _UNCROSSES, "required_information_reached": _UNREACHED}.get(old)
    if new == "required_information_reached":
        gained = "the required information is now reached without a boundary crossing"
        return f"{lost}; {gained}" if lost else gained
    if new == "conventional_only":
        if lost:
            return f"{lost}; the Z-curve is conventionally significant only"
        return ("the Z-curve is now conventionally significant but inside the monitoring "
                "boundary")
    if new == "open":
        if old == "conventional_only":
            return "the Z-curve is no longer conventionally significant"
        if lost:
            return f"{lost}; more evidence is needed"
    return f"the monitoring status changed from {status_label(old)} to {status_label(new)}"
