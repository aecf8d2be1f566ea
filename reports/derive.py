"""Log hazard ratio and its SE from what a trial report gives.

Every function returns a :class:`DerivedEstimate` on the *maintenance vs control* scale
(HR < 1 favours maintenance) with ``method`` (the value stored in ``Estimate.method``) and
``approximate`` (the number rests on an assumption a reader should know about):

- :func:`from_ci` — HR with a 95% CI (``reported_ci``): SE = (ln hi − ln lo)/(2·z), z = 1.95996…
  (``reports.meta.Z95``, R's qnorm(0.975), the quantile the pooled CI is rebuilt with);
  HRs printed as control vs maintenance are inverted; a CI that is asymmetric on the log
  scale beyond what rounding of the printed digits explains gets a warning.
- :func:`from_p_value` — two-sided P and the number of events (``p_value_events``; Parmar
  1998, Tierney 2007): V = events·r(1−r) with r the share randomised to maintenance (¼·events
  for 1:1), O−E = ±z·√V, ln HR = (O−E)/V, SE = 1/√V. Approximate: it assumes the log-rank
  statistic and a P value printed to enough digits.
- :func:`from_hr_p_value` — an HR printed with its two-sided P value but no CI
  (``hr_p_value``; Tierney 2007): ln HR as printed, SE = |ln HR| / z with z = Φ⁻¹(1 − p/2).
  Approximate: it assumes the P value is that of the HR (a Wald test) and printed to enough
  digits. An HR of 1 or P = 1 gives no SE: then only the P-value-and-events method applies.
- :func:`from_o_minus_e` — log-rank O−E and its variance V (``o_minus_e``; Peto's one-step).
- :func:`from_medians` — median survival per arm under exponential survival
  (``medians``): HR = median_control / median_maint, Var = 1/E_maint + 1/E_control.
  Always approximate.
- :func:`from_km_curves` — digitised Kaplan–Meier curves and the numbers-at-risk table per
  arm (``km_curves``; Guyot 2012): individual data reconstructed per arm, then a Cox model
  (``reports.km``). Always approximate; per arm, so maintenance vs control by construction.

Bad input raises :class:`store.errors.ValidationError` with a sentence naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from scipy import stats

from reports.km import ArmInput, hr_from_curves, read_arm
from reports.meta import Z95
from store.errors import ValidationError
from store.numbers import as_float, parse_decimal

ORIENTATIONS = ("maint_vs_control", "control_vs_maint")
Orientation = Literal["maint_vs_control", "control_vs_maint"]
#: Slack on top of the rounding bound, so 1e-12 float noise never warns.
_ASYMMETRY_SLACK = 1e-9


@dataclass
class DerivedEstimate:
    """A log HR (maintenance vs control) with its SE and how it was obtained."""

    log_hr: float
    se: float
    method: str  # reported_ci | p_value_events | hr_p_value | o_minus_e | medians | km_curves
    approximate: bool = False
    orientation_entered: str = "maint_vs_control"
    warnings: list[str] = field(default_factory=list)
    notes: str = ""

    @property
    def hr(self) -> float:
        return math.exp(self.log_hr)

    @property
    def ci_low(self) -> float:
        return math.exp(self.log_hr - Z95 * self.se)

    @property
    def ci_high(self) -> float:
        return math.exp(self.log_hr + Z95 * self.se)


# ----------------------------------------------------------------------------- helpers
def _positive(name: str, value: float | str | None) -> float:
    try:
        number = parse_decimal(value) if isinstance(value, str) else as_float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(f"{name} must be a positive number, got {value!r}",
                              hint="hazard ratios, CI limits, medians and events are > 0")
    return number


def _orientation(value: str) -> str:
    if value not in ORIENTATIONS:
        raise ValidationError(f"orientation must be one of {', '.join(ORIENTATIONS)}, "
                              f"got {value!r}")
    return value


def printed_decimals(value: float | str) -> int:
    """Digits after the decimal point as printed (0.46 → 2; 0.659 → 3; 0.50 and 1.00 → 2: a
    trailing zero is a printed digit, so it is not normalised away; a float has lost them and
    counts what ``str`` shows)."""
    try:
        exponent = Decimal(str(value).strip()).as_tuple().exponent
    except InvalidOperation:
        return 2
    return max(0, -int(exponent)) if isinstance(exponent, int) else 2


def rounding_bound(hr: float | str, lo: float | str, hi: float | str) -> float:
    """Largest |ln hr − (ln lo + ln hi)/2| that rounding of the printed values explains."""
    def half_ulp_log(x: float | str) -> float:
        return 0.5 * 10.0 ** (-printed_decimals(x)) / float(x)

    return half_ulp_log(hr) + 0.5 * (half_ulp_log(lo) + half_ulp_log(hi))


# ----------------------------------------------------------------------------- methods
def from_ci(
    hr: float | str,
    ci_low: float | str,
    ci_high: float | str,
    orientation: str = "maint_vs_control",
) -> DerivedEstimate:
    """Log HR and SE from an HR and its 95% CI as printed.

    ``orientation="control_vs_maint"`` inverts: HR' = 1/HR and CI' = (1/hi, 1/lo). Pass the
    numbers as printed (strings keep their digits: ``"0.50"`` has two decimals) so the
    asymmetry check knows how much rounding to allow.
    """
    orientation = _orientation(orientation)
    h, lo, hi = _positive("HR", hr), _positive("CI lower limit", ci_low), _positive(
        "CI upper limit", ci_high)
    if not lo < hi:
        raise ValidationError(f"CI lower limit {ci_low} must be below the upper limit {ci_high}")
    if not lo <= h <= hi:
        raise ValidationError(f"HR {hr} lies outside its CI {ci_low}–{ci_high}",
                              hint="check the numbers and their order")
    warnings: list[str] = []
    asymmetry = math.log(h) - (math.log(lo) + math.log(hi)) / 2
    bound = rounding_bound(hr, ci_low, ci_high)
    if abs(asymmetry) > bound + _ASYMMETRY_SLACK:
        warnings.append(
            f"the CI {ci_low}–{ci_high} is not symmetric around HR {hr} on the log scale "
            f"(off by {abs(asymmetry):.3f}, rounding explains at most {bound:.3f}): check the "
            "numbers; the SE is taken from the CI width"
        )
    log_hr = math.log(h)
    se = (math.log(hi) - math.log(lo)) / (2 * Z95)
    if orientation == "control_vs_maint":
        log_hr = -log_hr  # the CI width, hence the SE, is unchanged by inversion
    return DerivedEstimate(log_hr=log_hr, se=se, method="reported_ci",
                           orientation_entered=orientation, warnings=warnings)


def _allocation(n_maint: int | None, n_control: int | None) -> tuple[float, str]:
    if n_maint is None and n_control is None:
        return 0.5, "1:1 allocation assumed (V = events/4)"
    if n_maint is None or n_control is None:
        raise ValidationError("give both arm sizes or neither (neither assumes 1:1)")
    a, b = _positive("maintenance arm size", n_maint), _positive("control arm size", n_control)
    return a / (a + b), f"V = events·r(1−r) with r = {a:g}/{a + b:g}"


def _two_sided_p(p_value: float | str) -> float:
    """A two-sided P value as printed: more than 0, at most 1; a bound ("<0.001") is refused."""
    text = str(p_value).strip()
    if text[:1] in "<>≤≥":
        raise ValidationError(f"P value {text!r} is a bound, not a value",
                              hint="the method needs the exact P value")
    try:
        p = parse_decimal(text)
    except ValueError:
        raise ValidationError(f"P value must be a number, got {p_value!r}") from None
    if not 0 < p <= 1:
        # P = 1 (printed "1.00") is z = 0, ln HR = 0: the SE comes from the events, not from z
        raise ValidationError(f"two-sided P value must be more than 0 and at most 1, got {p:g}")
    return p


def from_p_value(
    p_value: float | str,
    events: int,
    *,
    favours: Literal["maintenance", "control"],
    n_maint: int | None = None,
    n_control: int | None = None,
) -> DerivedEstimate:
    """Parmar/Tierney: log HR and SE from a two-sided (log-rank) P value and total events.

    ``favours`` is the arm with the better outcome (the sign of the log HR); a P value
    printed as a bound ("<0.001") cannot be used — give the exact value. P = 1 gives
    ln HR = 0 (z = 0); the SE, 1/√V, does not depend on P, so it is accepted.
    """
    p = _two_sided_p(p_value)
    if favours not in ("maintenance", "control"):
        raise ValidationError(f"favours must be 'maintenance' or 'control', got {favours!r}")
    e = _positive("number of events", events)
    r, how = _allocation(n_maint, n_control)
    v = e * r * (1 - r)
    z = float(stats.norm.isf(p / 2))
    # The log-rank O − E of the maintenance arm lies between −E·r (every event in control)
    # and E·(1 − r): a P value beyond what the events allow is a typing error ("3" for 300
    # events), which made HR 1750 from P = 1e-10 and 3 events.
    reach = e * (r if favours == "maintenance" else 1 - r)
    if z * math.sqrt(v) > reach * (1 + 1e-9):
        smallest = float(2 * stats.norm.sf(reach / math.sqrt(v)))
        raise ValidationError(
            f"two-sided P value {p:g} is smaller than {e:g} events can give: even with every "
            f"event in the {'control' if favours == 'maintenance' else 'maintenance'} arm "
            f"the log-rank test gives P = {smallest:.2g}",
            hint="check the P value and the events, those of both arms together")
    o_minus_e = (-1.0 if favours == "maintenance" else 1.0) * z * math.sqrt(v)
    return DerivedEstimate(
        # (+ 0.0: P = 1 gives -0.0 when maintenance did better; stored as 0)
        log_hr=o_minus_e / v + 0.0, se=1 / math.sqrt(v), method="p_value_events",
        approximate=True,
        notes=f"Parmar/Tierney from P = {p:g}, {e:g} events; {how}",
    )


#: How far (relative, on top of the rounding of its printed digits) the HR derived from a P
#: value and events may be from an HR the curator typed before the form warns: the derivation
#: assumes a log-rank P and the allocation, so a few percent is expected; more says the printed
#: HR and the derived one are not the same number (P 0.01, 210 events, HR 0.80 printed:
#: derived 0.70), and the printed HR with its P value (``hr_p_value``) keeps it.
TYPED_HR_TOLERANCE = 0.10


def typed_hr_mismatch(typed: float | str, derived: DerivedEstimate,
                      orientation: str = "maint_vs_control") -> str | None:
    """A warning when ``derived`` (a P-value-and-events HR) is further from the HR typed
    beside it (in ``orientation``, as printed) than rounding of the printed digits widened by
    :data:`TYPED_HR_TOLERANCE` explains: HR outside [(h − ½ulp)/1.1, (h + ½ulp)·1.1]."""
    h = as_float(parse_decimal(typed) if isinstance(typed, str) else typed)
    half_ulp = 0.5 * 10.0 ** (-printed_decimals(typed))
    entered = math.exp(derived.log_hr if _orientation(orientation) == "maint_vs_control"
                       else -derived.log_hr)
    low = (h - half_ulp) / (1 + TYPED_HR_TOLERANCE)
    high = (h + half_ulp) * (1 + TYPED_HR_TOLERANCE)
    if low <= entered <= high:
        return None
    said = (f"the HR derived from the P value and events is {entered:.3g}, but the HR typed "
            f"is {str(typed).strip()} (more apart than its rounding and "
            f"{TYPED_HR_TOLERANCE:.0%} explain)")
    if h == 1:  # no SE follows from an HR of 1 and its P: no other method to suggest
        return said + ": check the P value, the events and the HR"
    return (said + "; the typed HR gave only the direction. If the paper prints this HR with "
            "its P value, choose the method 'reported HR with its P value (SE from P)', which "
            "keeps the printed HR")


def from_hr_p_value(
    hr: float | str,
    p_value: float | str,
    orientation: str = "maint_vs_control",
) -> DerivedEstimate:
    """Tierney 2007: an HR printed with its two-sided P value but no CI. ln HR is the printed
    HR's (inverted when printed as control vs maintenance); SE = |ln HR| / z, z = Φ⁻¹(1 − p/2).

    An HR of exactly 1 or P = 1 gives no SE (0/z, or |ln HR|/0): refused, with the P value and
    events method suggested (its SE comes from the events).
    """
    orientation = _orientation(orientation)
    h = _positive("HR", hr)
    p = _two_sided_p(p_value)
    if h == 1:
        raise ValidationError(
            "an HR of 1 with its P value gives no standard error (|ln HR| = 0)",
            hint="choose the method 'HR from a two-sided P value and the number of events'")
    if p >= 1:
        raise ValidationError(
            "a P value of 1 gives no standard error from the HR (z = 0)",
            hint="choose the method 'HR from a two-sided P value and the number of events'")
    z = float(stats.norm.isf(p / 2))
    log_hr = math.log(h)
    se = abs(log_hr) / z
    if orientation == "control_vs_maint":
        log_hr = -log_hr
    return DerivedEstimate(
        log_hr=log_hr, se=se, method="hr_p_value", approximate=True,
        orientation_entered=orientation,
        notes=f"Tierney: HR {h:g} as printed, SE = |ln HR| / z from P = {p:g}")


def from_o_minus_e(o_minus_e: float, variance: float) -> DerivedEstimate:
    """Peto: ln HR = (O−E)/V, SE = 1/√V, O−E for the maintenance arm."""
    try:
        oe = parse_decimal(o_minus_e) if isinstance(o_minus_e, str) else as_float(o_minus_e)
    except (TypeError, ValueError):
        raise ValidationError(f"O−E must be a number, got {o_minus_e!r}") from None
    if not math.isfinite(oe):
        raise ValidationError(f"O−E must be finite, got {o_minus_e!r}")
    v = _positive("log-rank variance V", variance)
    return DerivedEstimate(log_hr=oe / v, se=1 / math.sqrt(v), method="o_minus_e",
                           notes=f"O−E = {oe:g}, V = {v:g}")


def from_medians(
    median_maint: float,
    median_control: float,
    *,
    events_maint: int | None = None,
    events_control: int | None = None,
    events: int | None = None,
) -> DerivedEstimate:
    """HR from median survival under exponential survival in both arms (approximate).

    The hazard of an exponential is ln 2 / median, so HR = median_control / median_maint.
    Var(ln HR) = 1/E_maint + 1/E_control; with only the total ``events`` the split is taken
    as even (Var = 4/events), which the notes say.
    """
    m_t, m_c = _positive("maintenance median", median_maint), _positive(
        "control median", median_control)
    if events_maint is not None or events_control is not None:
        if events_maint is None or events_control is None:
            raise ValidationError("give events for both arms, or only the total")
        variance = 1 / _positive("maintenance events", events_maint) + 1 / _positive(
            "control events", events_control)
        how = f"events {events_maint}/{events_control}"
    elif events is not None:
        variance = 4 / _positive("number of events", events)
        how = f"{events} events split evenly (assumed)"
    else:
        raise ValidationError("events are needed for the variance",
                              hint="give events per arm or the total")
    return DerivedEstimate(
        # The difference of logs, not the log of the ratio: 1e-300/1e300 underflows to 0 and
        # was a math domain error (a 500); this way the plausibility check sees the log HR.
        log_hr=math.log(m_c) - math.log(m_t), se=math.sqrt(variance), method="medians",
        approximate=True,
        notes=f"exponential survival assumed: medians {m_t:g} vs {m_c:g} months; {how}",
    )


def from_km_curves(
    curve_maintenance: str,
    at_risk_maintenance: str,
    curve_control: str,
    at_risk_control: str,
    *,
    events_maintenance: int | None = None,
    events_control: int | None = None,
) -> DerivedEstimate:
    """Guyot 2012: log HR and SE of a Cox model fitted to individual data reconstructed from
    each arm's digitised KM curve (``time, survival`` lines, proportions or percentages) and
    at-risk table (``time, number at risk`` lines from time 0), with the arm's total events
    when known. Bad input raises :class:`reports.km.KmInputError` naming arm, field and line.
    """
    return from_km_arms(
        read_arm("maintenance", curve_maintenance, at_risk_maintenance, events_maintenance),
        read_arm("control", curve_control, at_risk_control, events_control))


def from_km_arms(maintenance: ArmInput, control: ArmInput) -> DerivedEstimate:
    """:func:`from_km_curves` for arms already read (``reports.km.read_arm``): the form reads
    each arm once, to name the mistakes of both arms in one answer."""
    result = hr_from_curves(maintenance, control)
    return DerivedEstimate(log_hr=result.log_hr, se=result.se, method="km_curves",
                           approximate=True, warnings=result.warnings, notes=result.notes)


# ----------------------------------------------------------------------------- re-derivation
def favours_from_hr(hr: float, orientation: str) -> Literal["maintenance", "control"]:
    """The arm that did better, from an HR printed in ``orientation``."""
    better_maint = hr < 1 if _orientation(orientation) == "maint_vs_control" else hr > 1
    return "maintenance" if better_maint else "control"


def o_minus_e_of_maintenance(o_minus_e: float, orientation: str) -> float:
    """O−E is the maintenance arm's; entered for the control arm it changes sign."""
    return o_minus_e if _orientation(orientation) == "maint_vs_control" else -o_minus_e


def derive_from_inputs(method: str, inputs: Mapping[str, Any]) -> DerivedEstimate:
    """Re-derive a stored estimate from its ``Estimate.derivation_inputs``.

    This is what a second reviewer does by hand: the same function, called with what the
    curator typed (the extraction form stores exactly these keys). ``orientation`` only
    matters for O−E (entered for the control arm it changes sign) and for a ``favours`` implied
    by a typed HR; medians and KM curves are per arm and have no orientation.
    """
    data = dict(inputs)
    orientation = str(data.get("orientation") or "maint_vs_control")
    try:
        return _derive_from(method, data, orientation)
    except KeyError as exc:
        raise ValidationError(f"the {method} inputs lack {exc.args[0]!r}",
                              hint="the stored inputs are incomplete; re-enter them") from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the {method} inputs are not numbers where needed: {exc}",
                              hint="the stored inputs are damaged; re-enter them") from None


def _derive_from(method: str, data: dict[str, Any], orientation: str) -> DerivedEstimate:
    if method == "p_value_events":
        favours = data.get("favours")
        if favours is None and data.get("hr") is not None:
            favours = favours_from_hr(_float(data["hr"]), orientation)
        if favours not in ("maintenance", "control"):
            raise KeyError("favours")  # reported as "the inputs lack 'favours'"
        return from_p_value(data["p_value"], data["events"], favours=favours,
                            n_maint=data.get("n_maintenance"), n_control=data.get("n_control"))
    if method == "hr_p_value":
        return from_hr_p_value(data["hr"], data["p_value"], orientation)
    if method == "o_minus_e":
        return from_o_minus_e(o_minus_e_of_maintenance(_float(data["o_minus_e"]), orientation),
                              data["variance"])
    if method == "medians":
        return from_medians(data["median_maintenance"], data["median_control"],
                            events_maint=data.get("events_maintenance"),
                            events_control=data.get("events_control"),
                            events=data.get("events"))
    if method == "km_curves":
        return from_km_curves(
            _text(data["curve_maintenance"]), _text(data["at_risk_maintenance"]),
            _text(data["curve_control"]), _text(data["at_risk_control"]),
            events_maintenance=_count(data.get("events_maintenance")),
            events_control=_count(data.get("events_control")))
    raise ValidationError(f"method {method!r} has no derivation inputs",
                          hint="only p_value_events, hr_p_value, o_minus_e, medians and "
                               "km_curves are derived")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected the text typed, got {type(value).__name__}")
    return value


def _float(value: Any) -> float:
    return parse_decimal(value) if isinstance(value, str) else as_float(value)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    number = _float(value)
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)
