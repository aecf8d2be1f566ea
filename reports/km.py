"""A hazard ratio from published Kaplan–Meier curves (Guyot et al., BMC Med Res Methodol 2012;12:9).

Older maintenance trials often print only KM curves with a numbers-at-risk table. A curator
digitises each arm's curve (WebPlotDigitizer or similar: ``time, survival`` lines) and copies
the at-risk table; this module turns that back into individual patient data (IPD) per arm by
inverting the KM equations interval by interval, and fits a Cox model on the two arms:

    read_arm          the texts a curator typed → ArmInput (checked, cleaned; errors name
                      the arm, the field and the line)
    arm_input         the same from numbers (times, survival, at-risk table, events)
    reconstruct_arm   ArmInput → ArmIPD: an event or censoring time per patient
    cox_two_groups    Cox proportional hazards, one binary covariate, Breslow ties,
                      Newton–Raphson on the partial likelihood → CoxFit
    hr_from_curves    both arms → KmHazardRatio (log HR maintenance vs control, SE, notes)
    kaplan_meier      the KM estimate of (reconstructed) data, to compare curves

The reconstruction, per arm, with the at-risk table splitting follow-up into intervals
[t_i, t_i+1) that start with n_i patients:

1. Censoring within an interval is spread evenly over it. A first guess of how many are
   censored is n_i · S(t_i+1)/S(t_i) − n_i+1 (those expected to survive minus those at risk).
2. At each digitised point k in the interval, the events are round(n_k · (1 − S_k / S*)),
   with S* the reconstructed KM at the last point with an event, so the reconstructed curve
   follows the digitised one; n_k+1 = n_k − events − censored in [T_k, T_k+1).
3. If that leaves a number at risk at t_i+1 other than the table's, the censored count is
   changed by the difference and step 2 repeated until they agree (or cannot: a warning; an
   error when nobody is left or it is far off, ``AT_RISK_REFUSED``).
4. After the table's last time, the number censored is unknown: with the arm's total events
   it is adjusted until the reconstructed events add up to them (a total below the events
   the earlier intervals already hold is an error on the events); without, censoring goes on at
   the average rate (per unit time) of the earlier intervals. Whoever is still at risk at the
   curve's last point is censored there.

Assumptions a reader should know (the result is flagged approximate): censoring uniform within
each interval, events at the digitised points, and proportional hazards for the Cox HR.

Errors: :class:`KmInputError`, a :class:`store.errors.ValidationError` whose ``field`` is the
extraction form's field (``curve_control``, ``at_risk_maintenance``, ``events_control`` …).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from store.errors import ValidationError
from store.numbers import parse_decimal

ARMS: tuple[str, ...] = ("maintenance", "control")
#: Digitising noise tolerated on a survival proportion: a point may lie this far above the
#: curve before it (it is lowered to it), or this far outside [0, 1] (it is clipped). More than
#: that is a wrong point (the other arm's curve, a legend, a typo), not noise.
SURVIVAL_TOLERANCE = 0.02
#: Survival values above this are read as percentages: a KM curve of proportions never gets
#: here even with noise, and one of percentages starts at 100.
PERCENT_ABOVE = 1.5
#: Bounds that keep a pasted file from tying up a request (a digitised curve has hundreds of
#: points at most).
MAX_POINTS = 5000
MAX_AT_RISK_ROWS = 500
#: Patients in one arm: more than any randomised arm (Myeloma XI, the largest maintenance
#: trial, randomised 1,971 to lenalidomide or observation: Jackson et al., Lancet Oncol
#: 2019;20:57-73, PMID 30559051). The reconstruction holds one entry
#: per patient: an arm of 10¹² asked for terabytes and stopped the request with a 500.
MAX_ARM_SIZE = 100_000
#: Iterations of the censoring adjustment of one interval (it settles in a handful).
_MAX_ADJUST = 200
_FIELD_LABELS = {"curve": "curve (time, survival)", "at_risk": "numbers at risk",
                 "events": "total events"}


class KmInputError(ValidationError):
    """A KM input is wrong. ``field`` is the form field (``curve_maintenance`` …), ``detail``
    the problem without the arm and field, which the message adds."""

    def __init__(self, arm: str, kind: str, detail: str, *, hint: str | None = None) -> None:
        self.arm = arm
        self.field = f"{kind}_{arm}"
        self.detail = detail
        super().__init__(f"{arm} arm, {_FIELD_LABELS[kind]}: {detail}", hint=hint)


# ----------------------------------------------------------------------------- value objects
@dataclass(frozen=True)
class ArmInput:
    """One arm, checked and cleaned: a non-increasing curve from (0, 1), with a point at every
    at-risk time, and the at-risk table from time 0 (the arm size)."""

    arm: str
    times: np.ndarray
    survival: np.ndarray
    risk_times: np.ndarray
    risk_numbers: np.ndarray
    total_events: int | None = None
    #: Digitised points the reader typed (before the clean-up added any).
    points_typed: int = 0
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return int(self.risk_numbers[0])


@dataclass(frozen=True)
class ArmIPD:
    """Reconstructed individual data of one arm: one time per patient and whether it is an
    event (else censored)."""

    arm: str
    time: np.ndarray
    event: np.ndarray
    warnings: tuple[str, ...] = ()
    #: Largest difference between the reconstructed numbers at risk and the table's.
    at_risk_off: int = 0

    @property
    def events(self) -> int:
        return int(self.event.sum())


@dataclass(frozen=True)
class CoxFit:
    """A two-group Cox fit: ``log_hr`` of group 1 vs group 0 and its SE (1/√information)."""

    log_hr: float
    se: float
    loglik: float
    iterations: int


@dataclass(frozen=True)
class KmHazardRatio:
    """The HR of maintenance vs control from the reconstructed IPD of both arms."""

    log_hr: float
    se: float
    maintenance: ArmIPD
    control: ArmIPD
    warnings: list[str] = field(default_factory=list)
    notes: str = ""


# ----------------------------------------------------------------------------- reading text
def line_fields(line: str) -> list[str]:
    """The fields of one line of a digitiser's export, stripped."""
    # "t,s" (CSV), "t;s" or "t<TAB>s"; a semicolon or a tab wins over a comma, so "1,5;0,98"
    # is read as two numbers with decimal commas (and refused as such); else blanks separate.
    if ";" in line or "\t" in line:
        parts = re.split(r"[;\t]", line)
    elif "," in line:
        parts = line.split(",")
    else:
        parts = line.split()
    parts = [p.strip() for p in parts]
    while parts and not parts[-1]:  # a trailing separator
        parts.pop()
    return parts


def _number(text: str) -> float | None:
    try:
        value = parse_decimal(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _data_rows(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, line, fields) of the lines that should hold numbers: blank lines and
    ``#`` comments are skipped, and so is a first line without any number (a header such as
    ``x,y`` or ``Time;Survival``)."""
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = line_fields(stripped)
        if first and all(_number(p) is None for p in parts):
            first = False
            continue
        first = False
        yield number, stripped, parts


def data_lines(text: str) -> list[str]:
    """The lines of a typed curve or table that hold (or should hold) a pair of numbers."""
    return [line for _, line, _ in _data_rows(text)]


def _pairs(text: str, arm: str, kind: str, second: str) -> list[tuple[int, float, float]]:
    """(line number, first, second) of each data line; a line that is not two numbers is an
    error naming it."""
    rows: list[tuple[int, float, float]] = []
    limit = MAX_POINTS if kind == "curve" else MAX_AT_RISK_ROWS
    for number, stripped, parts in _data_rows(text):
        values = [_number(p) for p in parts]
        if len(parts) != 2 or values[0] is None or values[1] is None:
            # "1,5;0,98" leaves a comma inside a field; "1,5,0,98" splits into four
            decimal_comma = any("," in p for p in parts) or (
                len(parts) > 2 and not (";" in stripped or "\t" in stripped))
            hint = ("use a decimal point, not a comma" if decimal_comma
                    else f"one 'time, {second}' pair per line")
            raise KmInputError(arm, kind, f"line {number} ({stripped[:40]!r}) is not two numbers",
                               hint=hint)
        rows.append((number, values[0], values[1]))
        if len(rows) > limit:
            raise KmInputError(arm, kind, f"more than {limit} lines",
                               hint="thin the digitised points out")
    return rows


def read_arm(arm: str, curve: str, at_risk: str, total_events: int | None = None) -> ArmInput:
    """An arm from what the curator typed: the digitiser's ``time, survival`` lines (survival
    as proportions or percentages: detected, and said in the notes) and the ``time, number at
    risk`` lines of the table, the first at time 0."""
    points = _pairs(curve, arm, "curve", "survival")
    if len(points) < 2:
        raise KmInputError(arm, "curve", f"{len(points)} point(s) given; at least 2 are needed",
                           hint="digitise the curve from time 0 to its end")
    survival = [s for _, _, s in points]
    unit = 100.0 if max(survival) > PERCENT_ABOVE else 1.0
    if survival[0] > PERCENT_ABOVE and all(s <= 1 for s in survival[1:]):
        # "0, 100" then "6, 0.90": the first value a percentage, the rest proportions. Read
        # as percentages (the largest value decides) the curve fell from 100% to 0.9% at
        # once, and the HR came out inverted with only warnings.
        (line, t1, s1) = points[1]
        raise KmInputError(
            arm, "curve", f"line {points[0][0]} gives survival {survival[0]:g} (a percentage) "
            f"but every later line at most 1 (proportions): read as percentages the curve "
            f"falls to {s1:g}% by time {t1:g} (line {line}); read as proportions its first "
            f"value {survival[0]:g} is above 1",
            hint="give every survival value in one unit: all as proportions (0–1) or all as "
                 "percentages (0–100)")
    rows = _pairs(at_risk, arm, "at_risk", "number at risk")
    return arm_input(
        arm, [t for _, t, _ in points], [s / unit for s in survival],
        [t for _, t, _ in rows], [n for _, _, n in rows], total_events,
        curve_lines=[n for n, _, _ in points], risk_lines=[n for n, _, _ in rows], unit=unit,
        scale_note=(f"survival read as percentages (largest value {max(survival):g})"
                    if unit == 100 else "survival read as proportions"),
    )


# ----------------------------------------------------------------------------- checks, clean-up
def _where(lines: Sequence[int] | None, i: int) -> str:
    return f"line {lines[i]}" if lines is not None else f"point {i + 1}"


def _check_curve(arm: str, times: np.ndarray, survival: np.ndarray,
                 lines: Sequence[int] | None, unit: float) -> None:
    if len(times) < 2:
        raise KmInputError(arm, "curve", f"{len(times)} point(s) given; at least 2 are needed")
    for i, (t, s) in enumerate(zip(times, survival, strict=True)):
        if not (math.isfinite(t) and math.isfinite(s)):
            raise KmInputError(arm, "curve", f"{_where(lines, i)} is not a finite number")
        if t < 0:
            raise KmInputError(arm, "curve", f"{_where(lines, i)}: time {t:g} is negative")
        if i and t < times[i - 1]:
            raise KmInputError(arm, "curve", f"{_where(lines, i)}: time {t:g} comes before "
                               f"{times[i - 1]:g} of the point above it",
                               hint="points must be in time order (sort the digitiser's export)")
        if not -SURVIVAL_TOLERANCE <= s <= 1 + SURVIVAL_TOLERANCE:
            raise KmInputError(arm, "curve", f"{_where(lines, i)}: survival {s * unit:g} is "
                               f"outside {'0–100%' if unit == 100 else '0–1'}")
    running = np.minimum.accumulate(np.clip(survival, 0.0, 1.0))
    rise = np.flatnonzero(survival > running + SURVIVAL_TOLERANCE)
    if rise.size:
        i = int(rise[0])
        raise KmInputError(arm, "curve", f"{_where(lines, i)}: survival rises to "
                           f"{survival[i] * unit:g} from {running[i - 1] * unit:g} before it",
                           hint="a KM curve never rises: a point of the other arm or a typo?")
    low_start = np.flatnonzero((times == 0) & (survival < 1 - SURVIVAL_TOLERANCE))
    if low_start.size:
        i = int(low_start[0])
        raise KmInputError(arm, "curve", f"{_where(lines, i)}: survival {survival[i] * unit:g} "
                           f"at time 0; a KM curve starts at {'100%' if unit == 100 else '1'}",
                           hint="is the axis cut, or is this another curve?")


def _check_at_risk(arm: str, times: np.ndarray, numbers: np.ndarray,
                   lines: Sequence[int] | None) -> None:
    if len(times) == 0:
        raise KmInputError(arm, "at_risk", "no rows given",
                           hint="give at least the arm size at time 0, as '0, 150'")
    for i, (t, n) in enumerate(zip(times, numbers, strict=True)):
        if not (math.isfinite(t) and math.isfinite(n)):
            raise KmInputError(arm, "at_risk", f"{_where(lines, i)} is not a finite number")
        if n < 0 or n != int(n):
            raise KmInputError(arm, "at_risk", f"{_where(lines, i)}: {n:g} is not a whole "
                               "number of patients")
        if n > MAX_ARM_SIZE:
            raise KmInputError(arm, "at_risk", f"{_where(lines, i)}: {n:g} at risk is more "
                               f"patients than any trial's arm (at most {MAX_ARM_SIZE:,})",
                               hint="the numbers at risk are patients, printed under the "
                                    "curve: check the row")
        if i and t <= times[i - 1]:
            raise KmInputError(arm, "at_risk", f"{_where(lines, i)}: time {t:g} does not come "
                               f"after {times[i - 1]:g}", hint="one row per time, in time order")
        if i and n > numbers[i - 1]:
            raise KmInputError(arm, "at_risk", f"{_where(lines, i)}: {int(n)} at risk at "
                               f"{t:g} is more than {int(numbers[i - 1])} at {times[i - 1]:g}",
                               hint="numbers at risk never increase: check the row and its arm")
    if times[0] != 0:
        raise KmInputError(arm, "at_risk", f"the first row is at time {times[0]:g}, not 0",
                           hint="start with the arm size at time 0, as '0, 150'")
    if numbers[0] < 1:
        raise KmInputError(arm, "at_risk", "the number at risk at time 0 (the arm size) is 0")


def arm_input(arm: str, times: Sequence[float], survival: Sequence[float],
              risk_times: Sequence[float], risk_numbers: Sequence[float],
              total_events: int | None = None, *, curve_lines: Sequence[int] | None = None,
              risk_lines: Sequence[int] | None = None, unit: float = 1.0,
              scale_note: str = "") -> ArmInput:
    """Check one arm and clean its curve up (survival as proportions).

    The clean-up rule: values are clipped to [0, 1]; each point is lowered to the lowest point
    before it (a running minimum: digitising noise never makes the curve rise); the curve
    starts at (0, 1) — a first point at time 0 is set to 1, else (0, 1) is put before it; at
    every at-risk time without a point, a point is added at the level the curve has there; a
    point read exactly at an at-risk time is moved just before it (its drop happened before).
    Anything beyond noise (``SURVIVAL_TOLERANCE``) is an error naming the line (or the point:
    ``curve_lines``/``risk_lines`` are the source lines, ``unit`` 100 shows values as the
    percentages typed).
    """
    if arm not in ARMS:
        raise ValidationError(f"arm must be one of {', '.join(ARMS)}, got {arm!r}")
    t = np.asarray(times, dtype=float)
    s = np.asarray(survival, dtype=float)
    _check_curve(arm, t, s, curve_lines, unit)
    rt = np.asarray(risk_times, dtype=float)
    rn = np.asarray(risk_numbers, dtype=float)
    _check_at_risk(arm, rt, rn, risk_lines)
    if total_events is not None and total_events < 0:
        raise KmInputError(arm, "events", f"{total_events} is negative")
    if total_events is not None and total_events > rn[0]:
        raise KmInputError(arm, "events", f"{total_events} events is more than the arm's "
                           f"{int(rn[0])} patients (at risk at time 0)",
                           hint="check the events and the table's first row")
    end = float(t[-1])
    beyond = rt > end
    if np.any(rn[beyond] > 0):
        i = int(np.flatnonzero(beyond & (rn > 0))[0])
        raise KmInputError(arm, "at_risk", f"{_where(risk_lines, i)}: {int(rn[i])} at risk at "
                           f"{rt[i]:g}, after the curve's last point ({end:g})",
                           hint="digitise the curve to its end (its last flat part included)")
    rt, rn = rt[~beyond], rn[~beyond]  # rows of 0 at risk after the curve's end say nothing

    clipped = np.clip(s, 0.0, 1.0)
    cleaned = np.minimum.accumulate(clipped)
    lowered = int(np.count_nonzero(cleaned < clipped - 1e-12))
    if t[0] == 0:
        cleaned = np.where(t == 0, 1.0, cleaned)  # noise at the start: KM is 1 at time 0
    else:
        t, cleaned = np.concatenate(([0.0], t)), np.concatenate(([1.0], cleaned))
    # A point read at an at-risk time (a curator reading the curve at the table's ticks) says
    # how far it had dropped by then: those events came before the table's number, which
    # counts only who is still event-free. So it is taken just before that time.
    on_tick = np.isin(t, rt) & (t > 0)
    t = np.where(on_tick, np.nextafter(t, -np.inf), t)
    missing = rt[~np.isin(rt, t)]
    if missing.size:
        # the curve's level at an at-risk time: the last point at or before it (a KM curve is
        # flat between the digitised drops)
        at = np.searchsorted(t, missing, side="right")
        t = np.insert(t, at, missing)
        cleaned = np.insert(cleaned, at, cleaned[at - 1])
    notes = [n for n in (scale_note,) if n]
    if lowered:
        notes.append(f"{lowered} point(s) above the curve before them lowered to it "
                     "(digitising noise)")
    return ArmInput(arm=arm, times=t, survival=cleaned, risk_times=rt,
                    risk_numbers=rn.astype(int), total_events=total_events,
                    points_typed=len(times), notes=tuple(notes))


# ----------------------------------------------------------------------------- reconstruction
def _round(x: float) -> int:
    # half up, not Python's round-half-even, so the rule reads the same in any language
    return math.floor(x + 0.5)


@dataclass
class _Pass:
    """One pass over an interval with a given number censored."""

    events: np.ndarray
    censor_times: list[float]
    at_risk_after: int
    km: float


def _pass(arm: ArmInput, lo: int, up: int, n_start: int, km_start: float, n_censored: int,
          t_from: float, t_to: float) -> _Pass:
    t, s = arm.times, arm.survival
    cens = (t_from + (t_to - t_from) * np.arange(1, n_censored + 1) / (n_censored + 1)
            if n_censored else np.empty(0))
    # censored in [T_k, T_k+1): the next point of the interval's end bounds the last one
    bounds = np.append(t[lo + 1:up + 1], np.inf)
    starts = np.searchsorted(cens, t[lo:up + 1], side="left")
    ends = np.searchsorted(cens, bounds, side="left")
    events = np.zeros(up - lo + 1, dtype=int)
    kept: list[float] = []
    n, km = n_start, km_start
    for j, k in enumerate(range(lo, up + 1)):
        d = 0
        if n > 0 and km > 0:
            d = min(max(_round(n * (1 - s[k] / km)), 0), n)
        if d:
            km *= 1 - d / n
        events[j] = d
        c = min(int(ends[j] - starts[j]), n - d)  # never censor more than are left
        kept.extend(cens[starts[j]:starts[j] + c].tolist())
        n -= d + c
    return _Pass(events=events, censor_times=kept, at_risk_after=n, km=km)


def _adjust(arm: ArmInput, span: tuple[int, int, int, float, float, float], first: int,
            miss: Callable[[_Pass], int]) -> _Pass:
    """The pass over an interval whose censored count leaves ``miss`` at 0: the count is
    changed by the miss until it is, or the best found is kept when it cannot be (a count
    stays between 0 and those at risk, and rounding may cycle)."""
    lo, up, n_start, km_start, t_from, t_to = span
    count = min(max(first, 0), n_start)
    tried: dict[int, tuple[int, _Pass]] = {}
    for _ in range(_MAX_ADJUST):
        result = _pass(arm, lo, up, n_start, km_start, count, t_from, t_to)
        off = miss(result)
        tried[count] = (off, result)
        if off == 0:
            return result
        nxt = min(max(count + off, 0), n_start)
        if nxt in tried:
            break
        count = nxt
    best = min(tried, key=lambda c: (abs(tried[c][0]), c))
    return tried[best][1]


def _worth_a_warning(got: int, expected: int) -> bool:
    # Rounding events to whole patients and spreading censoring evenly leave the
    # reconstruction a patient or two off now and then (the notes say so); more than 2% of
    # the number (at least 2) means the curve and the table disagree.
    return abs(got - expected) > max(1, _round(0.02 * expected))


#: A reconstruction this far off an at-risk row (relative to the table's number, and by more
#: than :data:`AT_RISK_REFUSED_PATIENTS`) is refused, as is one with nobody left where the
#: table has patients (and the two differ by more than a warning's noise): the curve and the
#: table are not the same arm's or units (a curve in years against a table in months, a curve
#: of mixed percentages and proportions). Digitising noise leaves the reconstruction a few
#: patients off (a warning past 2%): in 600 simulated arms of 40–400 patients, digitised on a
#: grid with noise of up to 0.005 on each survival value and 0.2 on each time, it was at most
#: 13% off a row (60 vs 69), and 26% only in a tail (17 vs 23, 6 patients).
AT_RISK_REFUSED = 0.25
#: ... and by more than this many patients: in a curve's tail a few patients are 25% of the
#: table's number, and noise alone moves them.
AT_RISK_REFUSED_PATIENTS = 10


def _grossly_off(got: int, expected: int) -> bool:
    if not _worth_a_warning(got, expected):
        return False
    return (got == 0 and expected > 0) or abs(got - expected) > max(
        AT_RISK_REFUSED * expected, AT_RISK_REFUSED_PATIENTS)


#: A reported total of events this far below those the reconstruction already holds before
#: the at-risk table's last time (relative, and by more than the patients below) is refused
#: on the arm's events: censoring after that time cannot take events away. Exact curves
#: overshoot by a few events (rounding at each point): at most 3 (5%) in the 600 simulated
#: arms of ``AT_RISK_REFUSED``.
EVENTS_BEYOND_REFUSED = 0.10
EVENTS_BEYOND_REFUSED_PATIENTS = 5


def _at_risk_miss(target: int, result: _Pass) -> int:
    return result.at_risk_after - target  # too many left at risk: censor more


def _events_miss(before: int, total: int, result: _Pass) -> int:
    return before + int(result.events.sum()) - total  # too many events: censor more


def _no_miss(result: _Pass) -> int:
    return 0


def reconstruct_arm(arm: ArmInput) -> ArmIPD:
    """Individual data of one arm from its cleaned curve and at-risk table (Guyot 2012)."""
    t, s = arm.times, arm.survival
    rt, rn = arm.risk_times, arm.risk_numbers
    lower = np.searchsorted(t, rt, side="left")  # the point at each at-risk time
    end = len(t) - 1
    event_times: list[np.ndarray] = []
    censor_times: list[float] = []
    warnings: list[str] = []
    n, km = int(rn[0]), 1.0
    censored_before = off = 0
    for i in range(len(rt)):
        lo = int(lower[i])
        last = i == len(rt) - 1
        up = end if last else int(lower[i + 1]) - 1
        t_from = float(t[lo])
        t_to = float(t[end]) if last else float(rt[i + 1])
        span = (lo, up, n, km, t_from, t_to)
        if not last:
            target = int(rn[i + 1])
            ratio = s[int(lower[i + 1])] / s[lo] if s[lo] > 0 else 0.0
            result = _adjust(arm, span, _round(n * ratio - target),
                             partial(_at_risk_miss, target))
            off = max(off, abs(result.at_risk_after - target))
            if _grossly_off(result.at_risk_after, target):
                raise KmInputError(
                    arm.arm, "at_risk",
                    f"{result.at_risk_after} at risk at {rt[i + 1]:g} in the reconstruction, "
                    f"{target} in the table: the curve's drop over {rt[i]:g}–{rt[i + 1]:g} "
                    f"is far from fitting the table (more than {AT_RISK_REFUSED:.0%} off, or "
                    "nobody left)",
                    hint="check that the curve and the table are the same arm's, the time "
                         "units of both (months, years) and the survival values (proportions "
                         "or percentages)")
            if _worth_a_warning(result.at_risk_after, target):
                warnings.append(
                    f"{arm.arm} arm: {result.at_risk_after} at risk at {rt[i + 1]:g} in the "
                    f"reconstruction, {target} in the table (the curve's drop over "
                    f"{rt[i]:g}–{rt[i + 1]:g} does not fit the table: check both)")
            censored_before += len(result.censor_times)
        else:
            # after the table's last time: censoring at the earlier intervals' average rate,
            # or as many as make the reconstructed events the reported total
            elapsed = float(rt[-1] - rt[0])
            rate = censored_before / elapsed if elapsed > 0 else 0.0
            first = _round(rate * (t_to - t_from))
            if arm.total_events is None:
                result = _adjust(arm, span, first, _no_miss)
            else:
                so_far = sum(len(e) for e in event_times)
                total = arm.total_events
                if so_far - total > max(EVENTS_BEYOND_REFUSED * total,
                                        EVENTS_BEYOND_REFUSED_PATIENTS):
                    # No censoring after the table's last time can take events away: the
                    # total is wrong (or another endpoint's, or the other arm's), or the
                    # curve and table are. (It was a warning suggesting more points.)
                    raise KmInputError(
                        arm.arm, "events",
                        f"{total} events reported, but the curve and the at-risk table "
                        f"already give {so_far} events before time {rt[-1]:g} (the table's "
                        "last time)",
                        hint="check the events (this arm's, this endpoint's) against the "
                             "curve and the table")
                result = _adjust(arm, span, first, partial(_events_miss, so_far, total))
                got = so_far + int(result.events.sum())
                if so_far > total and _worth_a_warning(so_far, total):
                    warnings.append(
                        f"{arm.arm} arm: {so_far} events in the reconstruction before time "
                        f"{rt[-1]:g} (the at-risk table's last time), {total} reported in all: "
                        "check the events against the curve and the table")
                elif _worth_a_warning(got, total):
                    # Said as the reconstruction's limit, not as an error in the inputs:
                    # exact inputs digitised at even time steps missed the total in 12 of 20
                    # simulated trials (the steps of the curve's tail fall between points).
                    warnings.append(
                        f"{arm.arm} arm: {got} events in the reconstruction, {total} reported: "
                        "after the at-risk table's last time the curve's points allow no "
                        "closer number (digitise more points on the end of the curve, at its "
                        "steps, or check the curve, the table and the events)")
        event_times.append(np.repeat(t[lo:up + 1], result.events))
        censor_times.extend(result.censor_times)
        n, km = result.at_risk_after, result.km
    events = np.concatenate(event_times) if event_times else np.empty(0)
    censored = np.concatenate((np.asarray(censor_times, dtype=float), np.full(n, t[end])))
    time = np.concatenate((events, censored))
    flag = np.concatenate((np.ones(events.size, dtype=bool), np.zeros(censored.size, dtype=bool)))
    order = np.argsort(time, kind="stable")
    return ArmIPD(arm=arm.arm, time=time[order], event=flag[order], warnings=tuple(warnings),
                  at_risk_off=off)


# ----------------------------------------------------------------------------- KM and Cox
def kaplan_meier(time: Sequence[float] | np.ndarray,
                 event: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The KM estimate: each distinct event time and the survival just after it."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    times = np.unique(t[e])
    ordered = np.sort(t)
    at_risk = t.size - np.searchsorted(ordered, times, side="left")
    deaths = np.searchsorted(np.sort(t[e]), times, side="right") - np.searchsorted(
        np.sort(t[e]), times, side="left")
    return times, np.cumprod(1 - deaths / at_risk)


def survival_at(km_times: np.ndarray, km_survival: np.ndarray,
                at: Sequence[float] | np.ndarray) -> np.ndarray:
    """A KM step function's value at the times ``at`` (right-continuous, 1 before the first
    event)."""
    idx = np.searchsorted(km_times, np.asarray(at, dtype=float), side="right")
    return np.concatenate(([1.0], km_survival))[idx]


def cox_two_groups(time: Sequence[float] | np.ndarray, event: Sequence[bool] | np.ndarray,
                   group: Sequence[int] | np.ndarray, *, tol: float = 1e-12,
                   max_iter: int = 50) -> CoxFit:
    """Cox proportional hazards with one binary covariate (``group`` 1 vs 0), Breslow ties.

    With x ∈ {0, 1}, the risk set at an event time t is n0(t) + n1(t)·e^β, so the Breslow
    partial log-likelihood is Σ_t [s_t·β − d_t·log(n0 + n1·e^β)] (d_t events at t, s_t of
    them in group 1), its score Σ_t (s_t − d_t·p_t) and information Σ_t d_t·p_t(1 − p_t) with
    p_t = n1·e^β / (n0 + n1·e^β). Newton–Raphson from β = 0, halving a step that lowers the
    likelihood; the SE is 1/√information at the estimate (as R's ``coxph(ties="breslow")``).
    """
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    g = np.asarray(group)
    if not (t.shape == e.shape == g.shape) or t.ndim != 1:
        raise ValidationError("time, event and group must be 1-d and of the same length")
    if not set(np.unique(g).tolist()) <= {0, 1}:
        raise ValidationError("group must be 0 (control) or 1 (maintenance)")
    for label, code in (("maintenance", 1), ("control", 0)):
        if not np.any(e & (g == code)):
            raise ValidationError(f"no events in the {label} arm: the hazard ratio cannot be "
                                  "estimated", hint="check the curve and the total events")
    times = np.unique(t[e])
    t1, t0 = np.sort(t[g == 1]), np.sort(t[g == 0])
    n1 = (t1.size - np.searchsorted(t1, times, side="left")).astype(float)
    n0 = (t0.size - np.searchsorted(t0, times, side="left")).astype(float)
    te, te1 = np.sort(t[e]), np.sort(t[e & (g == 1)])
    d = (np.searchsorted(te, times, side="right") - np.searchsorted(te, times, side="left"))
    s1 = (np.searchsorted(te1, times, side="right") - np.searchsorted(te1, times, side="left"))

    def loglik(beta: float) -> float:
        return float(np.sum(s1 * beta - d * np.log(n0 + n1 * math.exp(beta))))

    def score_info(beta: float) -> tuple[float, float]:
        w = n1 * math.exp(beta)
        p = w / (n0 + w)
        return float(np.sum(s1 - d * p)), float(np.sum(d * p * (1 - p)))

    def separated() -> ValidationError:
        return ValidationError("the Cox model did not converge",
                               hint="the reconstructed arms may separate completely")

    beta, current, iterations = 0.0, loglik(0.0), 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported in the fit)
        u, info = score_info(beta)
        # Arms that separate completely send β off without bound and the information to 0:
        # the step was a ZeroDivisionError (a 500 that lost the curves typed), or e^β an
        # OverflowError. No HR estimates such data; |log HR| > 20 is beyond any trial's.
        if not info > 0 or abs(beta) > 20:
            raise separated()
        step = u / info
        new = beta + step
        value = loglik(new)
        while value < current - 1e-12 and abs(step) > 1e-15:
            step /= 2
            new = beta + step
            value = loglik(new)
        beta, current = new, value
        if abs(step) < tol:
            break
    else:
        raise separated()
    _, info = score_info(beta)
    if not info > 0:
        raise separated()
    return CoxFit(log_hr=beta, se=1 / math.sqrt(info), loglik=current, iterations=iterations)


# ----------------------------------------------------------------------------- the HR
def _arm_note(arm: ArmInput, ipd: ArmIPD) -> str:
    reported = "" if arm.total_events is None else f" ({arm.total_events} reported)"
    fit = (f", off the at-risk table by up to {ipd.at_risk_off}" if ipd.at_risk_off
           else "")
    extra = "; ".join(arm.notes)
    return (f"{arm.arm}: {arm.points_typed} curve points"
            f"{', ' + extra if extra else ''}; at risk at {len(arm.risk_times)} time(s), "
            f"{arm.size} patients{fit}; {ipd.events} events reconstructed{reported}")


def hr_from_curves(maintenance: ArmInput, control: ArmInput) -> KmHazardRatio:
    """Reconstruct both arms and fit the Cox model: the log HR of maintenance vs control (the
    curves are per arm, so the orientation is fixed by construction)."""
    if maintenance.arm != "maintenance" or control.arm != "control":
        raise ValidationError("pass the maintenance arm first, then the control arm")
    ipd_m, ipd_c = reconstruct_arm(maintenance), reconstruct_arm(control)
    for ipd in (ipd_m, ipd_c):
        if ipd.events == 0:
            raise KmInputError(ipd.arm, "curve", "the curve never drops, so no events are "
                               "reconstructed and the hazard ratio cannot be estimated",
                               hint="digitise the curve's drops, or check the total events")
    fit = cox_two_groups(
        np.concatenate((ipd_m.time, ipd_c.time)), np.concatenate((ipd_m.event, ipd_c.event)),
        np.concatenate((np.ones(ipd_m.time.size, dtype=int),
                        np.zeros(ipd_c.time.size, dtype=int))))
    notes = ("reconstructed from KM curves (Guyot 2012; censoring uniform within intervals) "
             f"and a Cox model with Breslow ties; {_arm_note(maintenance, ipd_m)}; "
             f"{_arm_note(control, ipd_c)}")
    return KmHazardRatio(log_hr=fit.log_hr, se=fit.se, maintenance=ipd_m, control=ipd_c,
                         warnings=[*ipd_m.warnings, *ipd_c.warnings], notes=notes)
