"""Counted nouns and numbers in what mmlr writes (digests, pages, drawings, reasons): one rule
each, so that a page, the digest and a drawing never say "1 records", count 1,024
differently, round 1.025 two ways or write one interval as "0.18–1.64" here and
"0.18 to 1.64" there.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Literal


def noun(n: object, one: str, many: str | None = None) -> str:
    """The noun for ``n`` things: ``one`` for exactly 1, else ``many`` (``one`` + "s")."""
    return one if n == 1 else (many or one + "s")


def plural(n: object, one: str, many: str | None = None) -> str:
    """``n`` and its noun: "1 record", "2 records", "1,024 records"."""
    number = f"{n:,}" if isinstance(n, int) else str(n)
    return f"{number} {noun(n, one, many)}"


# ----------------------------------------------------------------------------- numbers
#: How a confidence (or prediction) interval is written, per medium (docs/curation.md,
#: "How numbers are written"): ``dash`` "0.18–1.64" in pages, e-mails, Markdown and the CLI;
#: ``bracket`` "[0.18, 1.64]" in figures (the forest-plot convention of RevMan and metafor).
#: CSV and R exports write each limit in its own machine-readable column instead.
IntervalStyle = Literal["dash", "bracket"]

Number = float | int | str | Decimal


def _decimal(value: Number) -> Decimal | None:
    """``value`` as the decimal a reader sees: a string as printed ("1.025"), a float by its
    shortest repr (1.025, not the binary 1.02499999…), so that half-up rounding rounds what
    was printed. None when it is not a finite number."""
    if isinstance(value, Decimal):
        number = value
    else:
        try:
            number = Decimal(value.strip() if isinstance(value, str) else repr(float(value)))
        except (InvalidOperation, ValueError, TypeError, OverflowError):
            return None
    return number if number.is_finite() else None


def rounded(value: Number | None, digits: int = 2, *, missing: str = "—") -> str:
    """``value`` to ``digits`` decimals, rounded half-up as clinical reports do (1.025 →
    "1.03"; Python's format rounds half-even on the binary value and gives "1.02").
    ``missing`` for None or NaN; "∞" / "-∞" beyond the float range."""
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    number = None if value is None else _decimal(value)
    if number is None:
        return missing
    step = Decimal(1).scaleb(-digits)
    # enough significant digits for any float (the default 28 refuse a τ² of 1e30 to 4 places)
    context = Context(prec=max(28, number.adjusted() + digits + 2))
    result = number.quantize(step, rounding=ROUND_HALF_UP, context=context)
    return f"{abs(result) if result.is_zero() else result:f}"  # never "-0.000"


def rounded_beside(value: float, threshold: float, digits: int, *,
                   at_or_below: bool = False) -> str:
    """``value`` as :func:`rounded` writes it to ``digits`` decimals, or with more decimals
    where that rounding would put it on the other side of ``threshold`` (of ``value >=
    threshold``, or with ``at_or_below`` of ``value <= threshold``): I² 49.7% is "49.7", not
    "50", where 50% is the line a rule draws, and a pooled CI limit of 0.997 is not "1.00"
    where the CI is said to exclude 1, so the number shown and the words of the rule beside
    it agree. Past ``digits`` + 5 decimals the
    value is cut towards its own side (49.9999999 → "49.99999"), never written with all of a
    float's digits."""
    def side(x: float) -> bool:
        return x <= threshold if at_or_below else x >= threshold

    for d in range(digits, digits + 6):
        text = rounded(value, d)
        if side(float(text)) == side(value):
            return text
    step = Decimal(1).scaleb(-(digits + 5))
    # towards its own side: down when below the threshold, up when above
    cut = Decimal(repr(float(value))).quantize(
        step, rounding=ROUND_FLOOR if value < threshold else ROUND_CEILING)
    return f"{cut:f}"


def hr_number(value: Number | None, *, missing: str = "—") -> str:
    """A hazard ratio (or a limit of its interval) as every report writes it: two decimals
    half-up, and below 0.01 two significant digits so that a tiny bound is never "0.00"."""
    number = None if value is None or (isinstance(value, float) and math.isinf(value)) \
        else _decimal(value)
    if number is not None and 0 < number < Decimal("0.01"):
        if number < Decimal("0.0001"):  # a bound that far out: its order of magnitude
            return f"{float(number):.2g}"
        # two significant digits, without a trailing zero (as "%.2g" writes them)
        step = Decimal(1).scaleb(number.adjusted() - 1)
        return f"{number.quantize(step, rounding=ROUND_HALF_UP).normalize():f}"

    return rounded(value, 2, missing=missing)


def hr_limit(value: Number | None, *, lower: bool, missing: str = "—") -> str:
    """A limit of an HR's confidence interval as :func:`hr_number` writes it, or with the
    digits that keep it on its side of HR 1 where two decimals would not (an upper limit of
    0.9996 is "0.9996", a lower one of 1.004 "1.004"): whether a CI includes 1 is decided on
    the computed limits, and "0.80–1.00" beside "the CI excludes 1" (or a bold league-table
    cell) said the opposite. ``lower`` is the side the rule reads: a lower limit includes 1
    at or below it, an upper one at or above it."""
    text = hr_number(value, missing=missing)
    if value is None:
        return text
    number = float(value)
    try:
        shown = float(text)
    except ValueError:
        return text
    if not math.isfinite(number) or number == 1.0:
        return text
    if lower and (number <= 1.0) != (shown <= 1.0):
        return rounded_beside(number, 1.0, 2, at_or_below=True)
    if not lower and (number >= 1.0) != (shown >= 1.0):
        return rounded_beside(number, 1.0, 2)
    return text


def interval_text(low: str, high: str, style: IntervalStyle = "dash") -> str:
    """Two limits already written as text: "0.18–1.64" or "[0.18, 1.64]"."""
    return f"[{low}, {high}]" if style == "bracket" else f"{low}–{high}"


def estimate_text(value: str, low: str | None, high: str | None,
                  style: IntervalStyle = "dash") -> str:
    """An estimate with its interval, all already text: "0.54 (0.18–1.64)" or
    "0.54 [0.18, 1.64]"; the estimate alone when there is no interval."""
    if low is None or high is None:
        return value
    if style == "bracket":
        return f"{value} {interval_text(low, high, style)}"
    return f"{value} ({interval_text(low, high, style)})"


def hr_ci_text(hr: Number | None, low: Number | None, high: Number | None,
               style: IntervalStyle = "dash") -> str:
    """An HR and its 95% CI from numbers: "0.54 (0.18–1.64)" (``hr_number`` the HR,
    ``hr_limit`` each limit)."""
    has_ci = low is not None and high is not None
    return estimate_text(hr_number(hr), hr_limit(low, lower=True) if has_ci else None,
                         hr_limit(high, lower=False) if has_ci else None, style)


def as_entered(value: object) -> str:
    """A number a curator typed (a median, O−E, a variance) as typed: "12.0" stays "12.0".
    Inputs stored as numbers lose their trailing zeros; those are written by their shortest
    repr (12.0, not "12") so that a float never shows as an integer it was not."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
