"""The inputs of a derived hazard ratio (``Estimate.derivation_inputs``), read back.

The extraction form (``extraction.parse_estimate``) stores what the curator typed for an HR
derived from a P value and events, O−E and V, or medians. This module turns those inputs into
the one-line description shown next to the method on the trial page, and into the form fields
that pre-fill a correction, so correcting a derived estimate needs no retyping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.models import Estimate

#: Form fields a derivation may use, in the order a reader meets them on the form.
INPUT_FIELDS: tuple[str, ...] = (
    "p_value", "favours", "hr", "events", "n_maintenance", "n_control", "o_minus_e",
    "variance", "median_maintenance", "median_control", "events_maintenance", "events_control",
)


def field_text(value: Any) -> str:
    """A stored number as a form field shows it: exact (``repr``), without a useless ``.0``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _arm_sizes(inputs: Mapping[str, Any]) -> str:
    if inputs.get("n_maintenance") is None or inputs.get("n_control") is None:
        return ""
    return f", arms {field_text(inputs['n_maintenance'])}/{field_text(inputs['n_control'])}"


def describe(method: str, inputs: Mapping[str, Any] | None) -> str:
    """'derived from P = 0.003 and 210 events …' — plain text (the template escapes it)."""
    if not inputs or method == "reported_ci":
        return ""
    get = inputs.get
    if method == "p_value_events":
        favours = f"favours {get('favours')}" if get("favours") else "direction not given"
        if get("hr") is not None:
            favours += f" (from HR {field_text(get('hr'))})"
        return (f"derived from P = {field_text(get('p_value'))} and "
                f"{field_text(get('events'))} events; {favours}{_arm_sizes(inputs)}")
    if method == "o_minus_e":
        arm = " (entered for the control arm)" if get("orientation") == "control_vs_maint" else ""
        return (f"derived from O − E = {field_text(get('o_minus_e'))} and "
                f"V = {field_text(get('variance'))}{arm}")
    if method == "medians":
        if get("events_maintenance") is not None:
            events = (f"{field_text(get('events_maintenance'))}/"
                      f"{field_text(get('events_control'))} events")
        else:
            events = f"{field_text(get('events'))} events (split evenly)"
        return (f"derived from medians {field_text(get('median_maintenance'))} vs "
                f"{field_text(get('median_control'))} months and {events}")
    return ""


def form_fields(estimate: Estimate) -> dict[str, str]:
    """The extraction form's derivation fields from a derived estimate's stored inputs.

    Empty when nothing was stored (reported HRs, and derived estimates entered before the
    inputs were kept). A direction implied by a typed HR is given back as that HR, not as a
    choice the curator never made, so saving the form unchanged stores the same inputs.
    """
    inputs = estimate.derivation_inputs
    if estimate.method == "reported_ci" or not inputs:
        return {}
    fields = {name: field_text(inputs.get(name)) for name in INPUT_FIELDS if name in inputs}
    if inputs.get("hr") is not None:
        fields.pop("favours", None)
    fields["orientation"] = str(inputs.get("orientation") or "maint_vs_control")
    return fields


def curator_notes(estimate: Estimate) -> str:
    """The estimate's notes without the line the derivation appended (``parse_estimate`` adds
    it again on saving; pre-filling it would repeat it on every correction)."""
    notes = estimate.notes or ""
    inputs = estimate.derivation_inputs
    if estimate.method == "reported_ci" or not inputs:
        return notes
    from reports.derive import derive_from_inputs
    from store.errors import MmlrError

    try:
        generated = derive_from_inputs(estimate.method, inputs).notes
    except MmlrError:
        return notes
    if generated and notes.endswith(generated):
        notes = notes[: -len(generated)].rstrip("\n")
    return notes
