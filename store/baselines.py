"""Assumed control-arm risks: the checks of an entry, storing one, and the current one per
analysis.

A hazard ratio says nothing about how many patients benefit; a guideline panel's summary of
findings states it per 1000 patients at a time point, from an assumed risk without maintenance
(GRADE guidance 27, Skoetz et al., J Clin Epidemiol 2020;118:124-131). That assumed risk is
not in the pooled data: a curator enters it per analysis as "x% of control patients
event-free at m months" and names where it comes from (a trial's control arm, the median of
the included trials' control arms, a registry). ``reports.absolute`` does the arithmetic.

Entries are append-only (``store.models.BaselineRisk``): a new entry becomes current and the
older ones stay as its history. The sensitivity twin of an analysis (``…/with_strategy``) uses
its own entry when it has one and its primary analysis' otherwise (``baseline_for``): they
describe the same patients.

This lives in ``store`` because the web app (form and API) and the exports (which may import
only ``store`` and ``reports``) read the same rows with the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from store.audit import audit
from store.errors import FieldsError
from store.models import BaselineRisk, User
from store.numbers import as_float, parse_decimal
from store.settings import MONITORING_ENDPOINTS
from store.text import quoted

#: The longest follow-up an entry may name (20 years): beyond it a typo is likelier.
MAX_MONTHS = 240.0
#: The earliest time point an entry may name: a summary of findings reports a maintenance
#: effect at months or years, and 1e-300 months is a slip, not a time point.
MIN_MONTHS = 1.0
#: The least and most of the control arm that may be event-free, in percent: closer to 0 or
#: 100 than one patient in ten thousand is a slip, not a risk a summary of findings reports
#: (1e-300% was accepted, and 5e-324% stored as 0% event-free).
MIN_PERCENT = 0.01
MAX_PERCENT = 99.99
SOURCE_MAX = 1000
STRATEGY_SUFFIX = "/with_strategy"
#: A comma followed by exactly three digits: "1,000" may be a thousand or one, so it is not
#: read as a decimal comma (four digits after it, "35,5000", cannot be a thousands separator).
_THOUSANDS = re.compile(r",[0-9]{3}(?![0-9])")


class BaselineError(FieldsError):
    """Bad fields of an entry: ``months``, ``event_free_percent``, ``source``, ``analysis``."""


@dataclass(frozen=True)
class CheckedBaseline:
    """An entry that passed ``validate_baseline``: ``event_free`` as a proportion (0, 1);
    ``warnings``, what the curator should check although it was accepted."""

    analysis_key: str
    months: float
    event_free: float
    source: str
    warnings: tuple[str, ...] = ()


def validate_baseline(*, analysis_key: Any, months: Any, event_free_percent: Any,
                      source: Any) -> CheckedBaseline:
    """Check an entry as typed in the form or sent as JSON (numbers may be text; a decimal
    comma is accepted, but not before exactly three digits, where it may separate thousands);
    every bad field is reported at once (:class:`BaselineError`)."""
    errors: dict[str, str] = {}
    key = _read_key(analysis_key, errors)
    m = _read_number(months, "months", errors)
    if m is not None and not MIN_MONTHS <= m <= MAX_MONTHS:
        errors["months"] = (f"must be at least {MIN_MONTHS:g} and at most {MAX_MONTHS:g} "
                            "months")
    pct = _read_number(event_free_percent, "event_free_percent", errors)
    if pct is not None and not MIN_PERCENT <= pct <= MAX_PERCENT:
        # 0% or 100% event-free leaves nothing for a hazard ratio to change; next to them, a
        # slip (a proportion's digits, an exponent) rather than a risk.
        errors["event_free_percent"] = (f"must be at least {MIN_PERCENT:g} and at most "
                                        f"{MAX_PERCENT:g} (percent)")
    text = source.replace("\r\n", "\n").strip() if isinstance(source, str) else None
    if source is not None and not isinstance(source, str):  # a JSON number, list or object
        errors["source"] = ("must be text: name where the control-arm risk comes from (GRADE "
                            "asks for it)")
    elif not text:
        errors["source"] = ("is required: name where the control-arm risk comes from "
                            "(GRADE asks for it)")
    elif len(text) > SOURCE_MAX:
        errors["source"] = f"is longer than {SOURCE_MAX} characters"
    if errors:
        raise BaselineError(errors)
    assert key is not None and m is not None and pct is not None and text
    warnings: list[str] = []
    if pct < 1:
        # A proportion typed into the percent field (0.35 for 35%) is a valid percent too:
        # accepted, but said, since it changes the absolute effect a hundredfold.
        warnings.append(f"Event-free {pct:.10g} is read as a percent: {pct:.10g}% of control "
                        f"patients event-free at {m:.10g} months. If you meant the proportion "
                        f"{pct:.10g}, type {pct * 100:.10g} for {pct * 100:.10g}%.")
    return CheckedBaseline(analysis_key=key, months=m, event_free=pct / 100, source=text,
                           warnings=tuple(warnings))


def _read_key(value: Any, errors: dict[str, str]) -> str | None:
    parts = value.split("/") if isinstance(value, str) else []
    ok = (len(parts) in (3, 4) and all(parts) and parts[1] in MONITORING_ENDPOINTS
          and (len(parts) == 3 or parts[3] == STRATEGY_SUFFIX[1:]))
    if not ok:
        errors["analysis"] = (f"{quoted(value)} is not an analysis key "
                              "(drug/endpoint/setting, e.g. thalidomide/PFS/post_asct)")
        return None
    return str(value)


def _read_number(value: Any, name: str, errors: dict[str, str]) -> float | None:
    if isinstance(value, bool):
        errors[name] = "must be a number"
        return None
    if isinstance(value, int | float):
        number = as_float(value)  # a JSON integer of 400 digits is infinite, as 1e999 is
    elif isinstance(value, str) and value.strip():
        if _THOUSANDS.search(value):
            text = value.strip()
            errors[name] = (f"{quoted(value)} is ambiguous: {text.replace(',', '')} with a "
                            f"thousands separator, or {text.replace(',', '.')} with a decimal "
                            "comma; type it without the comma, or with a decimal point")
            return None
        try:
            number = parse_decimal(value.replace(",", "."))
        except ValueError:
            errors[name] = f"{quoted(value)} is not a number"
            return None
    elif value is None or isinstance(value, str):
        errors[name] = "is required"
        return None
    else:  # a JSON list or object: not missing, the wrong kind of value
        errors[name] = "must be a number"
        return None
    if number != number or number in (float("inf"), float("-inf")):
        errors[name] = "must be a finite number"
        return None
    return number



def add_baseline(session: Session, *, entry: CheckedBaseline, user: User) -> BaselineRisk:
    """Store ``entry`` by ``user`` as a new row (the caller commits); it becomes the current
    one of its analysis. Audited as ``baseline.set`` with the entry it replaces."""
    if user.id is None:
        raise ValueError("the user must be stored before entering a baseline risk")
    previous = session.exec(select(BaselineRisk).where(
        BaselineRisk.analysis_key == entry.analysis_key).order_by(
        col(BaselineRisk.id).desc())).first()
    row = BaselineRisk(analysis_key=entry.analysis_key, months=entry.months,
                       event_free=entry.event_free, source=entry.source, entered_by=user.id)
    session.add(row)
    session.flush()
    audit(session, "baseline.set", actor=user.email, object_type="baseline_risk",
          object_id=row.id, analysis=row.analysis_key, months=row.months,
          event_free=row.event_free, replaces=previous.id if previous is not None else None)
    return row


def current_baselines(session: Session) -> dict[str, BaselineRisk]:
    """The current entry per analysis key: the newest row of each, by id (rows are only ever
    added, so the highest id is the last one saved)."""
    newest = select(func.max(BaselineRisk.id)).group_by(col(BaselineRisk.analysis_key))
    rows = session.exec(select(BaselineRisk).where(col(BaselineRisk.id).in_(newest)))
    return {row.analysis_key: row for row in rows}


def baseline_for(analysis_key: str,
                 current: Mapping[str, BaselineRisk]) -> BaselineRisk | None:
    """The entry an analysis uses: its own, else (for a sensitivity twin) its primary's."""
    own = current.get(analysis_key)
    if own is not None or not analysis_key.endswith(STRATEGY_SUFFIX):
        return own
    return current.get(analysis_key[: -len(STRATEGY_SUFFIX)])


def baseline_history(session: Session) -> dict[str, list[BaselineRisk]]:
    """Every entry per analysis key, newest first (the first of each is its current one): one
    query for a whole page of analyses."""
    history: dict[str, list[BaselineRisk]] = {}
    for row in session.exec(select(BaselineRisk).order_by(col(BaselineRisk.id).desc())):
        history.setdefault(row.analysis_key, []).append(row)
    return history
