"""The inputs of a derived hazard ratio (``Estimate.derivation_inputs``), read back.

The extraction form (``extraction.parse_estimate``) stores what the curator typed for an HR
derived from a P value and events, O−E and V, medians, or Kaplan–Meier curves. This module
turns those inputs into the one-line description shown next to the method on the trial page,
and into the form fields that pre-fill a correction, so correcting a derived estimate needs no
retyping. The JSON API takes them back the same way (``merge_derivation_inputs``): a client can
send a stored estimate's JSON, with ``derivation_inputs`` edited, to
``/api/estimates/{id}/correct``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.errors import ValidationError
from store.models import Estimate
from store.numbers import as_float

#: Form fields a derivation may use, in the order a reader meets them on the form.
INPUT_FIELDS: tuple[str, ...] = (
    "p_value", "favours", "hr", "events", "n_maintenance", "n_control", "o_minus_e",
    "variance", "median_maintenance", "median_control", "events_maintenance", "events_control",
    "curve_maintenance", "at_risk_maintenance", "curve_control", "at_risk_control",
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


#: Decimal inputs a float may shorten ("12.0" → 12.0, read back as "12"); their text as typed
#: is kept beside them, under ``AS_ENTERED``, when it says more than the number.
DECIMAL_FIELDS: tuple[str, ...] = ("hr", "o_minus_e", "variance", "median_maintenance",
                                   "median_control")
AS_ENTERED = "as_entered"


def keep_typed_text(inputs: dict[str, Any], typed: Mapping[str, Any]) -> None:
    """Add to ``inputs`` the text of each decimal input as typed, when its number alone would
    not give it back ("12.0", "3.50", "1e1"): a reader sees "12.0 months", as entered. Only
    then, so that inputs typed plainly are stored exactly as before."""
    kept = {}
    for name in DECIMAL_FIELDS:
        value, text = inputs.get(name), typed.get(name)
        if isinstance(value, float) and isinstance(text, str) \
                and text.strip() != field_text(value):
            kept[name] = text.strip()
    if kept:
        inputs[AS_ENTERED] = kept


def input_text(inputs: Mapping[str, Any], name: str) -> str:
    """One stored input as the curator typed it: the kept text when it still stands for the
    stored number (``keep_typed_text``), else the number (``field_text``)."""
    value = inputs.get(name)
    typed = inputs.get(AS_ENTERED)
    text = typed.get(name) if isinstance(typed, Mapping) else None
    if isinstance(text, str):
        try:
            if value is not None and float(text) == as_float(value):
                return text
        except (TypeError, ValueError):
            pass
    return field_text(value)


def _arm_sizes(inputs: Mapping[str, Any]) -> str:
    if inputs.get("n_maintenance") is None or inputs.get("n_control") is None:
        return ""
    return f", arms {field_text(inputs['n_maintenance'])}/{field_text(inputs['n_control'])}"


def direction_from_hr(inputs: Mapping[str, Any]) -> bool:
    """Whether a P-value derivation's direction came from (or is implied by) the typed HR: an
    HR of 1 takes no side, so with it the *Arm that did better* choice is the direction."""
    hr = inputs.get("hr")
    try:
        return hr is not None and as_float(hr) != 1
    except (TypeError, ValueError):
        return False


def describe(method: str, inputs: Mapping[str, Any] | None) -> str:
    """'derived from P = 0.003 and 210 events …' — plain text (the template escapes it)."""
    if not inputs or method == "reported_ci":
        return ""
    get = inputs.get
    if method == "p_value_events":
        favours = f"favours {get('favours')}" if get("favours") else "direction not given"
        if direction_from_hr(inputs):
            favours += f" (from HR {input_text(inputs, 'hr')})"
        elif get("hr") is not None:
            favours += f"; HR {input_text(inputs, 'hr')} typed"
        return (f"derived from P = {field_text(get('p_value'))} and "
                f"{field_text(get('events'))} events; {favours}{_arm_sizes(inputs)}")
    if method == "hr_p_value":
        entered = (" (entered as control vs maintenance)"
                   if get("orientation") == "control_vs_maint" else "")
        return (f"HR {input_text(inputs, 'hr')}{entered} as printed, SE from its two-sided "
                f"P = {field_text(get('p_value'))} (no CI printed)")
    if method == "o_minus_e":
        arm = " (entered for the control arm)" if get("orientation") == "control_vs_maint" else ""
        return (f"derived from O − E = {input_text(inputs, 'o_minus_e')} and "
                f"V = {input_text(inputs, 'variance')}{arm}")
    if method == "medians":
        if get("events_maintenance") is not None:
            events = (f"{field_text(get('events_maintenance'))}/"
                      f"{field_text(get('events_control'))} events")
        else:
            events = f"{field_text(get('events'))} events (split evenly)"
        return (f"derived from medians {input_text(inputs, 'median_maintenance')} vs "
                f"{input_text(inputs, 'median_control')} months and {events}")
    if method == "km_curves":
        return _describe_km(inputs)
    return ""


def _data_lines(text: Any) -> list[str]:
    """The lines of a stored KM text that hold numbers (not blank, a comment or a header)."""
    from reports.km import data_lines

    return data_lines(text) if isinstance(text, str) else []


def _per_arm(maint: str, control: str) -> str:
    return maint if maint == control else f"{maint}/{control}"


def _describe_km(inputs: Mapping[str, Any]) -> str:
    """'reconstructed from KM curves: 41/39 curve points, at-risk table at 6 times; 2 × 150
    patients; 88/95 events'. Counts come from the stored text, so a damaged row still reads;
    the arm sizes are the at-risk tables' first numbers as typed."""
    get = inputs.get
    points = [len(_data_lines(get(f"curve_{arm}"))) for arm in ("maintenance", "control")]
    tables = [_data_lines(get(f"at_risk_{arm}")) for arm in ("maintenance", "control")]
    sizes = [_second_field(rows[0]) if rows else "?" for rows in tables]
    patients = (f"2 × {sizes[0]} patients" if sizes[0] == sizes[1]
                else f"{sizes[0]}/{sizes[1]} patients")
    text = (f"reconstructed from KM curves: {points[0]}/{points[1]} curve points, at-risk "
            f"table at {_per_arm(str(len(tables[0])), str(len(tables[1])))} times; {patients}")
    events = {arm: field_text(get(f"events_{arm}")) for arm in ("maintenance", "control")}
    if events["maintenance"] and events["control"]:
        text += f"; {events['maintenance']}/{events['control']} events"
    else:
        text += "".join(f"; {n} {arm} events" for arm, n in events.items() if n)
    return text


def _second_field(line: str) -> str:
    from reports.km import line_fields

    parts = line_fields(line)
    return parts[1] if len(parts) > 1 else "?"


def form_fields(estimate: Estimate) -> dict[str, str]:
    """The extraction form's derivation fields from a derived estimate's stored inputs.

    Empty when nothing was stored (reported HRs, and derived estimates entered before the
    inputs were kept). A direction implied by a typed HR is given back as that HR, not as a
    choice the curator never made, so saving the form unchanged stores the same inputs.
    """
    inputs = estimate.derivation_inputs
    if estimate.method == "reported_ci" or not inputs:
        return {}
    fields = {name: input_text(inputs, name) for name in INPUT_FIELDS if name in inputs}
    if direction_from_hr(inputs):
        fields.pop("favours", None)
    fields["orientation"] = str(inputs.get("orientation") or "maint_vs_control")
    return fields


def curator_notes(estimate: Estimate) -> str:
    """The estimate's notes without the line the derivation appended (``parse_estimate`` adds
    it again on saving; pre-filling it would repeat it on every correction) and, for a derived
    HR, without the entry's "Check at entry" lines after it (``save_estimate`` replaces them
    with the correction's own; left in, they hid the derivation's line from this check)."""
    notes = estimate.notes or ""
    inputs = estimate.derivation_inputs
    if estimate.method == "reported_ci" or not inputs:
        return notes
    from reports.derive import derive_from_inputs
    from screening.web.extraction import CHECK_PREFIX
    from store.errors import MmlrError

    notes = "\n".join(line for line in notes.splitlines() if not line.startswith(CHECK_PREFIX))

    try:
        generated = derive_from_inputs(estimate.method, inputs).notes
    except MmlrError:
        return notes
    if generated and notes.endswith(generated):
        notes = notes[: -len(generated)].rstrip("\n")
    return notes


#: Fields of an estimate's JSON that are the derivation's *results* for a derived HR, not inputs
#: (a P-value derivation's inputs may carry the typed HR that gave the direction).
_DERIVED_OUTPUTS = frozenset({"hr", "ci_low", "ci_high", "log_hr", "se"})


def _same(a: Any, b: Any) -> bool:
    try:
        # (as_float: a JSON integer of 400 digits is infinite, not an OverflowError)
        return (float(a) if isinstance(a, str) else as_float(a)) == (
            float(b) if isinstance(b, str) else as_float(b))
    except (TypeError, ValueError):
        return field_text(a).strip() == field_text(b).strip()


def merge_derivation_inputs(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The request with a nested ``derivation_inputs`` object lifted to the top level, where
    ``parse_estimate`` reads the fields, and the warnings to return with the answer.

    A derived estimate's JSON carries its inputs only nested, so without this a client sending
    it back would be told ``p_value: is required``. A field given both at the top level and
    nested must agree (else a 400 names it: guessing which one the client edited could store a
    wrong number); the top-level HR and CI of a derived estimate are its results, so the
    nested values win there. Inputs sent with ``method`` ``reported_ci`` are not used, and the
    answer says so.
    """
    nested = data.get("derivation_inputs")
    merged = {k: v for k, v in data.items() if k != "derivation_inputs"}
    if nested is None:
        return merged, []
    if not isinstance(nested, Mapping):
        raise ValidationError("derivation_inputs must be an object (or null)",
                              hint="send the inputs as the estimate's JSON returns them")
    if str(data.get("method") or "reported_ci") == "reported_ci":
        return merged, ["derivation_inputs not used: method reported_ci takes hr, ci_low and "
                        "ci_high"] if nested else []
    # The top-level HR and CI of a derived estimate's JSON are its results, not inputs: left
    # in, parse_estimate would refuse them as fields of the reported-CI method (a typed HR
    # that gave a P value its direction comes back inside derivation_inputs).
    merged = {k: v for k, v in merged.items() if k not in _DERIVED_OUTPUTS}
    for key, value in nested.items():
        if key == "favours" and direction_from_hr(nested) and "favours" not in merged:
            continue  # the direction came from the typed HR: derive it again (as form_fields)
        if key in merged and merged[key] is not None and key not in _DERIVED_OUTPUTS \
                and not _same(merged[key], value):
            raise ValidationError(
                f"{key} is given twice with different values ({field_text(merged[key])} at the "
                f"top level, {field_text(value)} in derivation_inputs)",
                hint="send it once, or the same value in both places")
        merged[key] = value
    return merged, []
