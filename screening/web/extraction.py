"""The extraction form: turn what a curator typed into a stored Estimate.

The arithmetic (log HR, SE, inversion of "control vs maintenance", HRs derived from P values,
O−E/V, medians or Kaplan–Meier curves) belongs to ``reports.derive``; this module only reads
and checks the fields, names each bad one, and calls the right derivation. Form and JSON API
share it, so both give the same field-level messages. For a derived HR it also keeps what the
derivation used, as typed (``Estimate.derivation_inputs``), so the number can be re-derived and
a correction pre-filled (``derivation_inputs.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from sqlmodel import Session, col, select

from reports.analyses import ENDPOINTS as ANALYSIS_ENDPOINTS
from reports.analyses import (
    GENERIC_COMPARISON,
    SETTING_LABELS,
    comparison_key,
    cut_order,
    is_named_comparison,
)
from reports.bounds import (
    HR_RANGE,
    LOG_HR_MAX,
    SE_RANGE,
    plausible_hr,
    plausible_log_hr,
    plausible_se,
)
from reports.words import hr_ci_text
from store.audit import audit
from store.days import parse_day
from store.errors import FieldsError, MmlrError, Sentence
from store.ids import MAX_ID, id_of
from store.models import Estimate, Trial, TrialReport, User, utcnow
from store.numbers import parse_decimal

ENDPOINTS: tuple[str, ...] = ("PFS", "EFS", "TTP", "OS")
#: The earliest year of a report or a data cut.
MIN_YEAR = 1900
SETTINGS: tuple[str, ...] = ("post_asct", "non_transplant", "mixed")
ORIENTATIONS: dict[str, str] = {
    "maint_vs_control": "maintenance vs control (HR < 1 favours maintenance)",
    "control_vs_maint": "control vs maintenance (inverse: converted on save)",
}
METHODS: dict[str, str] = {
    "reported_ci": "reported HR with 95% CI",
    "p_value_events": "no CI: HR from a two-sided P value and the number of events",
    "hr_p_value": "no CI: reported HR with its two-sided P value (SE from P)",
    "o_minus_e": "no CI: HR from O−E and its variance V",
    "medians": "no HR: approximate HR from median times (exponential assumption)",
    "km_curves": "no HR: reconstructed from the Kaplan–Meier curves and numbers at risk "
                 "(Guyot 2012)",
}
#: The settings in words: the analyses' own labels, with what *mixed* means said.
SETTING_WORDS = {**{s: SETTING_LABELS[s] for s in SETTINGS}, "mixed": "mixed (both populations)"}
#: The short words of the stored codes, for tables and summaries (the forms' options say more).
METHOD_WORDS: dict[str, str] = {
    "reported_ci": "reported HR and 95% CI",
    "p_value_events": "from the P value and events",
    "hr_p_value": "reported HR with its P value (SE from P)",
    "o_minus_e": "from O−E and V",
    "medians": "from median times (approximate)",
    "km_curves": "from the Kaplan–Meier curves",
}
ORIENTATION_WORDS: dict[str, str] = {
    "maint_vs_control": "maintenance vs control",
    "control_vs_maint": "control vs maintenance (inverted on save)",
}
#: The KM method's text fields: per arm, the digitiser's ``time, survival`` lines and the
#: ``time, number at risk`` lines of the table.
KM_TEXT_FIELDS: tuple[str, ...] = ("curve_maintenance", "at_risk_maintenance", "curve_control",
                                   "at_risk_control")
#: Longest text accepted in one of them (a digitised curve is a few thousand characters).
KM_TEXT_MAX = 100_000


class FieldErrors(FieldsError):
    """Bad values in named fields of an estimate or trial form."""


class RepeatedExtraction(FieldErrors):
    """A new estimate that is a current one again (:func:`refuse_repeat`): a form sent twice
    (Back, then Save; a double click) as well as a second person's identical extraction."""

    def __init__(self, fields: dict[str, str], *, estimate_id: int) -> None:
        self.estimate_id = estimate_id
        super().__init__(fields)


class SecondExtraction(FieldErrors):
    """A new estimate with other numbers for a data cut the trial has a current estimate of
    already (:func:`refuse_second_extraction`): two numbers for one trial, report and cut."""

    def __init__(self, fields: dict[str, str], *, estimate_id: int) -> None:
        self.conflicts_with = estimate_id
        super().__init__(fields)


@dataclass
class EstimateDraft:
    values: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class _Reader:
    """Reads typed values from a form/JSON mapping and collects one error per field."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, str] = {}

    def text(self, name: str, *, max_len: int = 500, numbers: bool = False) -> str | None:
        """The stripped text of ``name``, None when it is left out, null or blank. A JSON body
        may carry anything: ``true``, ``[]`` or ``{}`` are refused rather than stored as the
        words "True", "[]" or "{}" (the form only ever sends text). ``numbers``: a JSON
        number is taken as the text it is (a P value sent as 0.03)."""
        raw = self.data.get(name)
        if raw is None:
            return None
        number = isinstance(raw, int | float) and not isinstance(raw, bool)
        if not isinstance(raw, str) and not (numbers and number):
            self.errors[name] = f"must be a string, not {_json_text(raw)}"
            return None
        value = str(raw).strip()
        if len(value) > max_len:
            self.errors[name] = f"is longer than {max_len} characters"
            return None
        return value or None

    def line(self, name: str, *, max_len: int = 500) -> str | None:
        """A one-line field (a name, a label, a citation): :meth:`text` that refuses line
        breaks, tabs and other control characters. They cannot be seen in the form, and
        would split a name across lines in the forest plot, the digest and the exports."""
        value = self.text(name, max_len=max_len)
        if value is not None and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
            self.errors[name] = "must be one line: no line breaks, tabs or control characters"
            return None
        return value

    def lines(self, name: str, *, max_len: int) -> str | None:
        """A textarea's text, stripped, with the browser's CRLF line ends made LF (the
        curator typed lines, not line-end characters)."""
        raw = self.data.get(name)
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.errors[name] = "must be text: one pair of numbers per line"
            return None
        value = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
        if len(value) > max_len:
            self.errors[name] = f"is longer than {max_len} characters"
            return None
        return value or None

    def choice(self, name: str, options: Any, default: str | None = None) -> str | None:
        value = self.text(name) or default
        if name in self.errors:  # not text: said already, and "is required" would hide it
            return None
        if value is None:
            self.errors[name] = "is required"
        elif value not in options:
            self.errors[name] = f"must be one of {', '.join(options)}"
            return None
        return value

    def number(self, name: str, *, required: bool = False, positive: bool = False,
               low: float | None = None, high: float | None = None) -> float | None:
        raw = self.data.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if required:
                self.errors[name] = "is required"
            return None
        if isinstance(raw, bool):
            self.errors[name] = "must be a number"
            return None
        try:
            value = parse_decimal(str(raw))
        except ValueError as exc:
            self.errors[name] = str(exc)
            return None
        if not math.isfinite(value):
            self.errors[name] = "must be a finite number"
        elif positive and value <= 0:
            self.errors[name] = "must be greater than 0"
        elif low is not None and value < low:
            self.errors[name] = f"must be at least {low:g}"
        elif high is not None and value > high:
            self.errors[name] = f"must be at most {high:g}"
        else:
            return value
        return None

    def integer(self, name: str, *, minimum: int = 0, maximum: int = MAX_ID,
                required: bool = False) -> int | None:
        value = self.number(name, required=required)
        if value is None:
            return None
        if value != int(value):
            self.errors[name] = "must be a whole number"
            return None
        if value < minimum:
            self.errors[name] = f"must be at least {minimum}"
            return None
        # (an id, a PMID or a count: none is larger, and the database column is no wider)
        if value > maximum:
            self.errors[name] = f"must be at most {maximum}"
            return None
        return int(value)

    def identifier(self, name: str, what: str) -> int | None:
        """An id (of ``what``): a whole JSON number or ASCII digits (the form's text), 1 to
        MAX_ID; None when left out, null or blank. ``true`` (1 to Python), 1.0 or "1.0" name
        no row: :meth:`integer` read them as 1 (and ``true`` as "must be a number")."""
        raw = self.data.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if (value := id_of(raw)) is not None:
            return value
        self.errors[name] = f"must be {what}'s id (a whole number from 1), not {_json_text(raw)}"
        return None

    def flag(self, name: str) -> bool:
        raw = self.data.get(name)
        if isinstance(raw, bool):
            return raw
        return str(raw or "").strip().lower() in ("1", "true", "on", "yes")

    def day(self, name: str) -> date | None:
        text = self.text(name, max_len=10)
        if text is None:
            return None
        try:
            return parse_day(text)
        except ValueError:
            self.errors[name] = f"{text!r} is not a date (YYYY-MM-DD)"
            return None


def _json_text(raw: Any) -> str:
    """A value as the client wrote it in JSON (``true``, not Python's ``True``), shortened."""
    try:
        shown = json.dumps(raw, ensure_ascii=False)
    except (TypeError, ValueError):  # (only JSON reaches here; any other value, by its type)
        shown = type(raw).__name__
    return shown if len(shown) <= 30 else shown[:29] + "…"


#: The fields each method reads for its number (besides the arm sizes and total events, which
#: every estimate keeps). ``hr`` is also the P-value method's: the direction when *favours*
#: is left blank.
METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "reported_ci": ("hr", "ci_low", "ci_high"),
    "p_value_events": ("p_value", "favours", "hr"),
    "hr_p_value": ("hr", "p_value"),
    "o_minus_e": ("o_minus_e", "variance"),
    "medians": ("median_maintenance", "median_control", "events_maintenance", "events_control"),
    "km_curves": (*KM_TEXT_FIELDS, "events_maintenance", "events_control"),
}
#: The field a derivation's own complaint goes beside (``_derive``): the method's first input.
LEADING_FIELD: dict[str, str] = {
    "reported_ci": "hr", "p_value_events": "p_value", "hr_p_value": "hr", "o_minus_e": "o_minus_e",
    "medians": "median_maintenance", "km_curves": "curve_maintenance",
}


def _given(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, str) and not raw.strip())


def _other_methods_fields(r: _Reader, method: str) -> None:
    """Refuse a field of another method that is filled in. The form shows every method's
    fields at once (no script hides them), so a number typed into one the chosen method does
    not read would be dropped without a word: a P value typed with the reported-CI method, a
    median whose method was never switched to, or garbage (``abc``, ``NaN``) no check ever
    looked at. Refused, the curator either clears it or picks the method that uses it; what
    was typed is kept in the form shown again."""
    used = set(METHOD_FIELDS[method])
    for name in dict.fromkeys(f for fields in METHOD_FIELDS.values() for f in fields):
        if name in used or name in r.errors or not _given(r.data.get(name)):
            continue
        users = " or ".join(repr(METHOD_WORDS[m]) for m, fields in METHOD_FIELDS.items()
                            if name in fields)
        r.errors[name] = (f"is given but the method is {METHOD_WORDS[method]!r}: clear it, or "
                          f"choose the method that uses it ({users})")


def _implausible(r: _Reader, method: str, derived: Any, inputs: Mapping[str, Any]) -> bool:
    """Refuse an HR or SE no trial reports (``reports.bounds``, the bounds of ``mmlr meta``),
    beside the method's leading field and naming the fields it came from. Checked before the
    CI is computed from it: exp() of a log HR of 1e6 overflows."""
    names = [n for n in inputs if n != "orientation"]
    source = " and ".join(names) if len(names) < 3 else (", ".join(names[:-1])
                                                           + " and " + names[-1])
    field_name = LEADING_FIELD[method]
    # Sentences: they name the fields the HR came from, so the form shows no label before them.
    if not plausible_log_hr(derived.log_hr):
        r.errors[field_name] = Sentence(
            f"the HR derived from {source} is implausible: its log is {derived.log_hr:.3g} "
            f"(outside ±{LOG_HR_MAX:.2f}, an HR outside {HR_RANGE}); check the numbers entered")
    elif not plausible_se(derived.se):
        r.errors[field_name] = Sentence(
            f"the standard error of the log HR derived from {source} is {derived.se:.3g}, "
            f"implausible (outside {SE_RANGE}; it is about 2/√(events)); check the numbers "
            "entered")
    return field_name in r.errors


def setting_problem(trial: Trial, setting: str) -> str | None:
    """Why an estimate in ``setting`` cannot be ``trial``'s: a trial of one population reports
    that population only. Only a *mixed* trial has estimates by stratum (or for the whole
    trial); an estimate filed under the other population would enter that population's
    analysis, and the "all settings" analysis twice."""
    if trial.setting == "mixed" or setting == trial.setting:
        return None
    return (f"{trial.name} is a {SETTING_WORDS.get(trial.setting, trial.setting)} trial: its "
            f"estimates are {SETTING_WORDS.get(trial.setting, trial.setting)} (if it enrolled "
            "both populations and reports them by stratum, set the trial's setting to mixed "
            "first)")


def parse_estimate(data: Mapping[str, Any], *, trial: Trial,
                   reports: list[TrialReport]) -> EstimateDraft:
    """Check every field and derive log HR and SE; raise FieldErrors naming each bad field."""
    r = _Reader(data)
    report_id = r.identifier("report_id", "a report")
    if report_id is not None and report_id not in {rep.id for rep in reports}:
        r.errors["report_id"] = Sentence(f"report {report_id} does not belong to trial "
                                          f"{trial.name}")
    values: dict[str, Any] = {
        "report_id": report_id,
        "endpoint": r.choice("endpoint", ENDPOINTS),
        "setting": r.choice("setting", SETTINGS, default=trial.setting),
        # None when blank: save_estimate fills in the trial's comparison (it has the session)
        "comparison": r.line("comparison", max_len=200),
        "data_cut": r.day("data_cut"),
        "data_cut_label": r.line("data_cut_label", max_len=200),
        "n_maintenance": r.integer("n_maintenance", minimum=1),
        "n_control": r.integer("n_control", minimum=1),
        "events": r.integer("events", minimum=1),
        "verified": r.flag("verified"),
        "notes": r.text("notes", max_len=4000),
        "citation": r.line("citation", max_len=1000),
    }
    n_total = (values["n_maintenance"] or 0) + (values["n_control"] or 0)
    if values["events"] is not None and values["n_maintenance"] and values["n_control"] \
            and values["events"] > n_total:
        # Each patient has at most one event of an endpoint: more is a typo, and the P-value
        # method would derive an SE from it.
        r.errors["events"] = (f"{values['events']} events is more than the {n_total} patients "
                              "of both arms")
    cut = values["data_cut"]
    if cut is not None and cut.year < MIN_YEAR:
        # 0001-01-01 is a slip or a script's placeholder, not a cut; reports share the bound.
        r.errors["data_cut"] = f"{cut.isoformat()} is before {MIN_YEAR} (check the year)"
    elif cut is not None and cut > utcnow().date():
        # The latest cut of a trial is the one pooled: a date typed a century ahead would
        # replace every real later cut, for good.
        r.errors["data_cut"] = (f"{cut.isoformat()} is in the future: a data cut is the day "
                                 "follow-up was closed for the analysis reported, a day that "
                                 "has passed (check the year)")
    report = next((rep for rep in reports if rep.id == report_id), None)
    if cut is not None and "data_cut" not in r.errors and report is not None \
            and report.year is not None and cut.year > report.year:
        # A report cannot print data collected after it was published: such a cut is a typo
        # (2021 for 2012), and as the trial's latest cut it would replace the real one.
        r.errors["data_cut"] = (
            f"{cut.isoformat()} is after the year of its report ({report.year}): a report "
            "cannot give a data cut later than its publication; check the date, or choose "
            "the report that gives this cut")
    if values["setting"] and (problem := setting_problem(trial, values["setting"])):
        r.errors["setting"] = problem
    method = r.choice("method", METHODS, default="reported_ci")
    orientation = r.choice("orientation", ORIENTATIONS, default="maint_vs_control")
    values["orientation_entered"] = orientation
    if method is not None:
        _other_methods_fields(r, method)
    derived: Any = None
    # What the chosen derivation used, as typed: kept with the estimate (derivation_inputs).
    inputs: dict[str, Any] = {"orientation": orientation}
    if method == "reported_ci":
        derived = _from_ci(r, orientation)
    elif method == "p_value_events":
        derived = _from_p_value(r, orientation, values, inputs)
    elif method == "hr_p_value":
        derived = _from_hr_p_value(r, orientation, inputs)
    elif method == "o_minus_e":
        derived = _from_o_minus_e(r, orientation, inputs)
    elif method == "medians":
        derived = _from_medians(r, values, inputs)
    elif method == "km_curves":
        derived = _from_km_curves(r, values, inputs)
    if r.errors or derived is None:
        raise FieldErrors(r.errors or {"method": "choose how the HR was reported"})
    printed: tuple[float, float, float] | None = None
    if isinstance(derived, tuple):
        derived, printed = derived
    elif _implausible(r, str(method), derived, inputs):  # (a reported CI is checked in _from_ci)
        raise FieldErrors(r.errors)
    hr, ci_low, ci_high = printed if printed else (math.exp(derived.log_hr), derived.ci_low,
                                                   derived.ci_high)
    if derived.method == "hr_p_value":  # the HR as printed, not exp(ln HR) (0.8000000000000002)
        hr = inputs["hr"] if orientation == "maint_vs_control" else 1 / inputs["hr"]
    notes = "\n".join(n for n in (values["notes"], getattr(derived, "notes", "")) if n) or None
    reported = derived.method == "reported_ci"
    values.update(hr=hr, ci_low=ci_low, ci_high=ci_high,
                  log_hr=derived.log_hr, se=derived.se, method=derived.method,
                  approximate=bool(derived.approximate), notes=notes,
                  derivation_inputs=None if reported else _with_typed_text(inputs, r),
                  # the text as typed: "0.50" comes back as "0.50" on the Correct form
                  printed={name: _raw(r, name) for name in PRINTED_FIELDS} if reported
                  else None)
    return EstimateDraft(values=values, warnings=_warnings(derived))


def _with_typed_text(inputs: dict[str, Any], r: _Reader) -> dict[str, Any]:
    # "12.0 months" must read back as typed, not as the float's "12" (derivation_inputs)
    from screening.web.derivation_inputs import keep_typed_text

    keep_typed_text(inputs, {name: _raw(r, name) for name in inputs if name in r.data})
    return inputs


#: The fields of a reported HR kept as typed (``Estimate.printed``).
PRINTED_FIELDS = ("hr", "ci_low", "ci_high")


def _warnings(derived: Any) -> list[str]:
    return [str(w) for w in getattr(derived, "warnings", None) or [] if w]


def _derive(r: _Reader, field_name: str, fn_name: str, *args: Any, **kwargs: Any) -> Any:
    from reports import derive

    try:
        return getattr(derive, fn_name)(*args, **kwargs)
    except MmlrError as exc:  # the derivation's own check, attached to the leading field
        # (its sentence names the field itself: "two-sided P value must be …")
        r.errors[field_name] = Sentence(exc.one_line())
        return None


def _raw(r: _Reader, name: str) -> str:
    # reports.derive wants the numbers as printed: "0.50" has two decimals, which bounds the
    # rounding the CI-asymmetry check allows.
    return str(r.data.get(name)).strip()


def _plausible_hr(r: _Reader, name: str, value: float | None) -> float | None:
    """``value`` unless it is an HR no trial reports (``reports.bounds``): then None, and the
    field's error. mmlr meta refuses such a row, so storing it would only postpone the refusal
    to the pooling (and a 1e-320 limit gives an SE of 188, a 1e30 one of 18)."""
    if value is None or plausible_hr(value):
        return value
    r.errors[name] = (f"{_raw(r, name)[:30]} is implausible for a hazard ratio (outside "
                      f"{HR_RANGE}): no trial reports one; check for a typo or a percentage")
    return None


def _from_ci(r: _Reader, orientation: str | None) -> Any:
    hr = r.number("hr", required=True, positive=True)
    lo = r.number("ci_low", required=True, positive=True)
    hi = r.number("ci_high", required=True, positive=True)
    hr, lo, hi = (_plausible_hr(r, name, value) for name, value in
                  (("hr", hr), ("ci_low", lo), ("ci_high", hi)))
    if lo is not None and hi is not None and lo >= hi:
        # Said after the field's name on the form ("95% CI lower 0.89 must be …") and after
        # "ci_low:" in the API: the message itself names the value, not the field again.
        r.errors["ci_low"] = f"{lo:g} must be below the upper limit {hi:g}"
    elif hr is not None and lo is not None and hi is not None and not lo <= hr <= hi:
        r.errors["hr"] = f"{hr:g} is not inside its confidence interval {lo:g}–{hi:g}"
    if r.errors or orientation is None or hr is None or lo is None or hi is None:
        return None
    derived = _derive(r, "hr", "from_ci", _raw(r, "hr"), _raw(r, "ci_low"), _raw(r, "ci_high"),
                      orientation=orientation)
    if derived is not None and not plausible_se(derived.se):
        # Limits each within the bounds can still give an SE no trial has (1.0000–1.0001)
        width = "narrow" if derived.se < 1 else "wide"
        r.errors["ci_low"] = Sentence(
            f"the CI {_raw(r, 'ci_low')[:30]}–{_raw(r, 'ci_high')[:30]} gives a standard error "
            f"of the log HR of {derived.se:.3g}, implausible (outside {SE_RANGE}): no trial's "
            f"CI is that {width}; check both limits")
        return None
    # Keep the HR and CI as printed (inverted when entered the other way round) rather than
    # exp(log HR), which gives 0.3499999999999999 for a printed 0.35, and the symmetric CI
    # implied by log HR ± 1.96 SE.
    printed = (hr, lo, hi) if orientation == "maint_vs_control" else (1 / hr, 1 / hi, 1 / lo)
    return None if derived is None else (derived, printed)


def _favours(r: _Reader, orientation: str | None, inputs: dict[str, Any]) -> str | None:
    from reports.derive import favours_from_hr

    chosen = r.text("favours", max_len=20)
    if "favours" in r.errors:  # not text: said, rather than "is required"
        return None
    if chosen:
        if chosen not in ("maintenance", "control"):
            r.errors["favours"] = "must be maintenance or control"
            return None
        inputs["favours"] = chosen
        # A typed HR is this method's field too: kept when it agrees (an HR of 1 takes no
        # side, so it always does), refused when it says the other arm did better (never
        # dropped: one of the two is a typing slip).
        typed = r.number("hr", positive=True)
        if typed is not None and orientation is not None:
            if typed != 1 and favours_from_hr(typed, orientation) != chosen:
                r.errors["hr"] = (f"{_raw(r, 'hr')[:30]} says the {_other_arm(chosen)} arm did "
                                  f"better, but Arm that did better is {chosen}: check both")
                return None
            inputs["hr"] = typed
        return chosen
    hr = r.number("hr", positive=True)
    if hr is None or hr == 1 or orientation is None:
        if "hr" not in r.errors:
            r.errors["favours"] = "is required: which arm did better (or give the reported HR)"
        return None
    # Keep the HR the direction came from, and the direction it implies, so a reader sees both.
    inputs.update(hr=hr, favours=favours_from_hr(hr, orientation))
    return str(inputs["favours"])


def _other_arm(arm: str) -> str:
    return "control" if arm == "maintenance" else "maintenance"


def _from_p_value(r: _Reader, orientation: str | None, values: dict[str, Any],
                  inputs: dict[str, Any]) -> Any:
    favours = _favours(r, orientation, inputs)
    p_value = r.text("p_value", max_len=30, numbers=True)
    if p_value is None and "p_value" not in r.errors:
        r.errors["p_value"] = "is required"
    if values.get("events") is None and "events" not in r.errors:
        r.errors["events"] = "is required to derive an HR from a P value"
    if r.errors:
        return None
    inputs.update(p_value=p_value, events=values["events"])
    for arm in ("n_maintenance", "n_control"):
        if values.get(arm) is not None:
            inputs[arm] = values[arm]
    derived = _derive(r, "p_value", "from_p_value", _raw(r, "p_value"), values["events"],
                      favours=favours, n_maint=values.get("n_maintenance"),
                      n_control=values.get("n_control"))
    if derived is not None and inputs.get("hr") is not None and orientation is not None:
        # The typed HR gave only the direction: say so when the derived one is another number.
        from reports.derive import typed_hr_mismatch

        if (warning := typed_hr_mismatch(_raw(r, "hr"), derived, orientation)) is not None:
            derived.warnings.append(warning)
    return derived


def _from_hr_p_value(r: _Reader, orientation: str | None, inputs: dict[str, Any]) -> Any:
    """An HR printed with its P value but no CI (Tierney 2007): the HR kept, SE from P."""
    hr = _plausible_hr(r, "hr", r.number("hr", required=True, positive=True))
    p_value = r.text("p_value", max_len=30, numbers=True)
    if p_value is None and "p_value" not in r.errors:
        r.errors["p_value"] = "is required"
    if hr == 1:
        r.errors["hr"] = ("is 1: with its P value it gives no standard error (|ln HR| = 0); "
                          "choose the method 'HR from a two-sided P value and the number of "
                          "events' and give the events")
    if r.errors or orientation is None or hr is None:
        return None
    inputs.update(hr=hr, p_value=p_value)
    return _derive(r, "p_value", "from_hr_p_value", _raw(r, "hr"), _raw(r, "p_value"),
                   orientation=orientation)


def _from_o_minus_e(r: _Reader, orientation: str | None, inputs: dict[str, Any]) -> Any:
    o_minus_e = r.number("o_minus_e", required=True)
    variance = r.number("variance", required=True, positive=True)
    if r.errors or orientation is None or o_minus_e is None:
        return None
    inputs.update(o_minus_e=o_minus_e, variance=variance)  # as entered, before any sign change
    from reports.derive import o_minus_e_of_maintenance

    return _derive(r, "o_minus_e", "from_o_minus_e",
                   o_minus_e_of_maintenance(o_minus_e, orientation), variance)


def _from_medians(r: _Reader, values: dict[str, Any], inputs: dict[str, Any]) -> Any:
    m_maint = r.number("median_maintenance", required=True, positive=True)
    m_control = r.number("median_control", required=True, positive=True)
    e_maint = r.integer("events_maintenance", minimum=1)
    e_control = r.integer("events_control", minimum=1)
    if (e_maint is None) != (e_control is None) and not r.errors:
        missing = "events_control" if e_control is None else "events_maintenance"
        r.errors[missing] = "is required when the other arm's events are given"
    if e_maint is None and values.get("events") is None and not r.errors:
        r.errors["events_maintenance"] = "(or the total events) is required for the SE"
    _arm_events_within_sizes(r, values, e_maint, e_control)
    _arm_events_add_up(r, values, e_maint, e_control)
    if r.errors:
        return None
    inputs.update(median_maintenance=m_maint, median_control=m_control)
    if e_maint is not None:
        inputs.update(events_maintenance=e_maint, events_control=e_control)
    else:
        inputs["events"] = values.get("events")
    return _derive(r, "median_maintenance", "from_medians", m_maint, m_control,
                   events_maint=e_maint, events_control=e_control,
                   events=None if e_maint is not None else values.get("events"))


def _arm_events_add_up(r: _Reader, values: Mapping[str, Any], e_maint: int | None,
                       e_control: int | None) -> None:
    """Refuse a total of events that is not the sum of the arms' events, when all three are
    given: the medians method took its SE from the arms' (300 + 300) while the estimate kept
    the total (100), and one of the three is a typo."""
    total = values.get("events")
    if total is None or e_maint is None or e_control is None or "events" in r.errors:
        return
    if e_maint + e_control != total:
        r.errors["events"] = (f"{total} is not the sum of the arms' events "
                              f"(events_maintenance {e_maint} + events_control {e_control} = "
                              f"{e_maint + e_control}): check the three, or leave the total "
                              "blank")


def _arm_events_within_sizes(r: _Reader, values: Mapping[str, Any], e_maint: int | None,
                             e_control: int | None) -> None:
    """Refuse an arm's events above its size, when both are given: each patient has at most
    one event of an endpoint, so more is a typo, and the medians method takes its SE from
    the events (900 events in an arm of 100 was accepted: only the total was checked)."""
    for arm, events in (("maintenance", e_maint), ("control", e_control)):
        size = values.get(f"n_{arm}")
        if events is not None and size and events > size and f"events_{arm}" not in r.errors:
            r.errors[f"events_{arm}"] = (f"{events} events is more than the {size} patients "
                                         f"of the {arm} arm")


def _from_km_curves(r: _Reader, values: dict[str, Any], inputs: dict[str, Any]) -> Any:
    texts = {name: r.lines(name, max_len=KM_TEXT_MAX) for name in KM_TEXT_FIELDS}
    for name, text in texts.items():
        if text is None and name not in r.errors:
            r.errors[name] = ("is required: the digitised 'time, survival' lines" if
                              name.startswith("curve") else
                              "is required: the 'time, number at risk' lines, from time 0")
    # an arm's total events, when reported: optional, per arm (the reconstruction of each arm
    # uses its own)
    e_maint = r.integer("events_maintenance", minimum=0)
    e_control = r.integer("events_control", minimum=0)
    _arm_events_within_sizes(r, values, e_maint, e_control)
    _arm_events_add_up(r, values, e_maint, e_control)
    if r.errors:
        return None
    inputs.update(texts)
    for name, value in (("events_maintenance", e_maint), ("events_control", e_control)):
        if value is not None:
            inputs[name] = value
    from reports.derive import from_km_arms
    from reports.km import ArmInput, KmInputError, read_arm

    def km_error(exc: KmInputError) -> None:  # on the field it names, with the line
        r.errors[exc.field] = exc.detail + (f" ({exc.hint})" if exc.hint else "")

    # Each arm is read on its own, so a mistake in both arms is named in both at once.
    arms: list[ArmInput] = []
    for arm, events in (("maintenance", e_maint), ("control", e_control)):
        try:
            arms.append(read_arm(arm, texts[f"curve_{arm}"] or "", texts[f"at_risk_{arm}"] or "",
                                 events))
        except KmInputError as exc:
            km_error(exc)
    if r.errors:
        return None
    try:
        return from_km_arms(*arms)
    except KmInputError as exc:  # an arm whose curve never drops
        km_error(exc)
    except MmlrError as exc:  # the model itself (it did not converge): not the field's fault
        r.errors["curve_maintenance"] = Sentence(exc.one_line())
    return None


def _comparison(session: Session, trial: Trial, typed: str | None,
                warnings: list[str]) -> str:
    """The comparison to store. Blank means the trial's comparison: its one named comparison
    if it has exactly one, else the generic one. Analyses pool one comparison per trial
    (``reports.analyses`` rule 4), so a contrast the trial has not had before is pointed out:
    written differently by mistake, it would leave a new data cut out of every analysis."""
    rows = session.exec(select(Estimate.comparison).where(
        Estimate.trial_id == trial.id, col(Estimate.withdrawn_at).is_(None))).all()
    named: dict[str, str] = {}
    for text in rows:
        if is_named_comparison(text):
            named.setdefault(comparison_key(text), text)
    if typed is None:
        return next(iter(named.values())) if len(named) == 1 else GENERIC_COMPARISON
    if is_named_comparison(typed) and named and comparison_key(typed) not in named:
        listed = ", ".join(repr(t) for t in sorted(named.values()))
        warnings.append(
            f"comparison {typed!r} is new for {trial.name} (its estimates compare {listed}): a "
            "multi-arm trial enters each analysis with one comparison, its first entered; if "
            "this is the same contrast, write it the same way")
    return typed


def refuse_repeat(session: Session, *, trial: Trial, draft: EstimateDraft) -> None:
    """Refuse a new estimate that repeats a current one of the trial: the same report,
    endpoint, setting, comparison, data cut (date and label), method and numbers. Stored
    twice it would be listed twice on the trial page, wait twice for verification and, once
    both are verified, the later copy would silently "supersede" the first. FieldErrors on
    the HR (on the method for a derived HR), naming the estimate stored already."""
    values = draft.values
    comparison = comparison_key(_comparison(session, trial, values.get("comparison"), []))
    label = " ".join(str(values.get("data_cut_label") or "").lower().split())
    rows = session.exec(select(Estimate).where(
        Estimate.trial_id == trial.id, col(Estimate.withdrawn_at).is_(None),
        Estimate.endpoint == values["endpoint"], Estimate.setting == values["setting"],
        Estimate.method == values["method"]).order_by(col(Estimate.id))).all()
    for old in rows:
        if (old.report_id == values.get("report_id") and old.data_cut == values.get("data_cut")
                and " ".join((old.data_cut_label or "").lower().split()) == label
                and comparison_key(old.comparison) == comparison
                and math.isclose(old.log_hr, values["log_hr"], abs_tol=1e-9)
                and math.isclose(old.se, values["se"], abs_tol=1e-9)):
            said = (f"{hr_ci_text(old.hr, old.ci_low, old.ci_high)} is" if
                    values["method"] == "reported_ci" else
                    f"gives HR {hr_ci_text(old.hr, old.ci_low, old.ci_high)}, which is")
            field_name = "hr" if values["method"] == "reported_ci" else "method"
            assert old.id is not None
            raise RepeatedExtraction({field_name: (
                f"{said} already estimate {old.id} of {trial.name}, with the same report, "
                f"endpoint, setting, comparison and data cut: an extraction is entered once "
                f"(to change estimate {old.id}, use its Correct button)")}, estimate_id=old.id)


def _cut_words(report_id: int | None, cut: date | None, label: str | None) -> str:
    """The report and data cut of an estimate, as a message names them."""
    parts = [f"report {report_id}" if report_id is not None else "no report",
             f"data cut {cut.isoformat()}" if cut is not None else "no data cut date"]
    if label:
        parts.append(f"label “{label}”")
    return ", ".join(parts)


def refuse_second_extraction(session: Session, *, trial: Trial, values: Mapping[str, Any],
                             replacing: int | None = None) -> None:
    """Refuse an estimate whose report, endpoint, setting, comparison and data cut (date and
    label) are those of a current estimate of the trial (but for ``replacing``, the one a
    correction withdraws) with other numbers or another method: the analyses pool one
    number per trial and cut, so the later one entered would silently replace the first. Its
    number is changed by correcting it; another cut is told apart by its date, label or
    report. FieldErrors on the data cut (:class:`SecondExtraction`), naming the estimate.

    An estimate with no report, no data cut date and no label names no cut to compare: it
    is left to the warnings of :func:`save_estimate` (an undated cut of a dated trial)."""
    label = " ".join(str(values.get("data_cut_label") or "").lower().split())
    if values.get("report_id") is None and values.get("data_cut") is None and not label:
        return
    comparison = comparison_key(_comparison(session, trial, values.get("comparison"), []))
    rows = session.exec(select(Estimate).where(
        Estimate.trial_id == trial.id, col(Estimate.withdrawn_at).is_(None),
        Estimate.endpoint == values["endpoint"], Estimate.setting == values["setting"],
        col(Estimate.id) != (replacing or 0)).order_by(col(Estimate.id))).all()
    for old in rows:
        if (old.report_id == values.get("report_id") and old.data_cut == values.get("data_cut")
                and " ".join((old.data_cut_label or "").lower().split()) == label
                and comparison_key(old.comparison) == comparison):
            assert old.id is not None
            cut = _cut_words(old.report_id, old.data_cut, old.data_cut_label)
            raise SecondExtraction({"data_cut": Sentence(
                f"estimate {old.id} of {trial.name} already gives {old.endpoint} "
                f"({SETTING_WORDS.get(old.setting, old.setting)}, {old.comparison}) for the "
                f"same report and data cut ({cut}): HR "
                f"{hr_ci_text(old.hr, old.ci_low, old.ci_high)}, "
                f"{METHOD_WORDS.get(old.method, old.method)}. A trial's data cut has one "
                f"number: to change it, correct estimate {old.id} (its Correct button, or "
                f"POST /api/estimates/{old.id}/correct); if this is another data cut, give "
                "its date or label (or its report)")}, estimate_id=old.id)


class _Cut(NamedTuple):
    estimate_id: int | None  # None: the estimate being entered
    data_cut: date | None
    report_year: int | None


def _cuts(session: Session, trial: Trial, values: Mapping[str, Any]) -> tuple[_Cut, list[_Cut]]:
    """The estimate being entered and the trial's current ones that compete with it for
    being the latest cut (same setting, same endpoint family; not the one a correction
    replaces)."""
    report_id = values.get("report_id")
    report = session.get(TrialReport, report_id) if report_id is not None else None
    family = next((names for names in ANALYSIS_ENDPOINTS.values()
                   if str(values.get("endpoint") or "").upper() in names), ())
    rows = session.exec(
        select(col(Estimate.id), col(Estimate.data_cut), col(TrialReport.year))
        .join(TrialReport, col(Estimate.report_id) == col(TrialReport.id), isouter=True)
        .where(Estimate.trial_id == trial.id, col(Estimate.withdrawn_at).is_(None),
               Estimate.setting == values.get("setting"), col(Estimate.endpoint).in_(family),
               col(Estimate.id) != (values.get("supersedes_id") or 0))
        .order_by(col(Estimate.id))).all()
    new = _Cut(None, values.get("data_cut"), report.year if report is not None else None)
    return new, [_Cut(*row) for row in rows]


def _judged_order_warning(trial: Trial, new: _Cut, others: list[_Cut]) -> str | None:
    """A warning when whether this estimate's cut is later than another of the trial's rests on
    report years (``reports.analyses.cut_order``): one of the two has no data cut date, and
    the other's cut falls in or before its report's year. The analyses then judge the order
    by the reports; a data cut date makes it certain."""
    judged = [o for o in others if cut_order(new, o)[1] is not None]
    if not judged:
        return None
    ids = ", ".join(str(o.estimate_id) for o in judged)
    several = len(judged) > 1
    if new.data_cut is None:  # then this estimate is the one without a date
        return (f"no data cut date, only the report's year {new.report_year}: whether this cut "
                f"is later than that of estimate{'s' if several else ''} {ids} of {trial.name} "
                "is judged from the report years, not known; enter the data cut date to be sure")
    return (f"estimate{'s' if several else ''} {ids} of {trial.name} "
            f"{'have' if several else 'has'} no data cut date, only a report's year: whether "
            "this cut is later is judged from the report years, not known; enter "
            f"{'their' if several else 'its'} data cut (Correct) to be sure")


def _undated_warning(trial: Trial, new: _Cut, others: list[_Cut]) -> str | None:
    """A warning when the estimate cannot be placed in time (no data cut date, and no report
    with a year) while the trial has dated estimates of the same endpoint and setting: the
    analyses pool a trial's latest cut, and an undated one ranks below every dated one, so a
    new data cut entered this way would silently leave the older one pooled."""
    if new.data_cut is not None or new.report_year is not None:
        return None
    dated = [str(o.estimate_id) for o in others
             if o.data_cut is not None or o.report_year is not None]
    if not dated:
        return None
    which = (f"estimate {dated[0]} of {trial.name} (dated) stays" if len(dated) == 1 else
             f"the latest of estimates {', '.join(dated)} of {trial.name} (dated) stays")
    return (f"no data cut date and no report with a year: this estimate cannot be placed in "
            f"time, so {which} the trial's latest cut in every analysis; choose the report "
            "the numbers come from or enter the data cut date")


#: The start of a note line that keeps a check's warning with the estimate.
CHECK_PREFIX = "Check at entry: "


def save_estimate(session: Session, *, trial: Trial, draft: EstimateDraft, user: User) -> Estimate:
    """Store the estimate (the caller commits)."""
    values = dict(draft.values)
    values["comparison"] = _comparison(session, trial, values.get("comparison"), draft.warnings)
    new, others = _cuts(session, trial, values)
    for check in (_undated_warning, _judged_order_warning):
        if (warning := check(trial, new, others)) is not None:
            draft.warnings.append(warning)
    # The checks' warnings stay with the estimate (its notes), so that the second person who
    # verifies it sees them too, not only the one who saw the message after saving.
    # A correction carries its predecessor's notes: their checks are replaced by its own.
    kept = [line for line in str(values.get("notes") or "").splitlines()
            if line and not line.startswith(CHECK_PREFIX)]
    values["notes"] = "\n".join([*kept, *(CHECK_PREFIX + w for w in draft.warnings)]) or None
    estimate = Estimate(trial_id=trial.id, created_by=user.id,  # type: ignore[arg-type]
                        verified_by=user.id if values.get("verified") else None, **values)
    session.add(estimate)
    session.flush()
    audit(session, "estimate.add", actor=user.email, object_type="estimate",
          object_id=estimate.id, trial=trial.name, endpoint=estimate.endpoint,
          hr=estimate.hr, method=estimate.method, orientation=estimate.orientation_entered,
          derivation_inputs=estimate.derivation_inputs, printed=estimate.printed,
          warnings=draft.warnings)
    return estimate
