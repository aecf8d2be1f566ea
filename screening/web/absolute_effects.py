"""Absolute effects (summary of findings) on /estimates and in the JSON API: reading the
assumed control risk from the form and the JSON body, what each analysis' block shows, and the
JSON of an entry. The checks and the queries are ``store.baselines``'s and the arithmetic is
``reports.absolute``'s; this module only maps the form and the body onto them and arranges
the page, so the page and the API say the same thing.

The form's fields and the JSON body's keys are named as ``BaselineError.fields`` names them
(``analysis``, ``months``, ``event_free_percent``, ``source``), so an error lands next to its
field and the API's ``fields`` map uses the same names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from reports.absolute import absolute_or_reason
from screening.web.deps import unknown_fields
from screening.web.templating import utc_text
from store.baselines import (
    STRATEGY_SUFFIX,
    BaselineError,
    CheckedBaseline,
    add_baseline,
    baseline_for,
    baseline_history,
    current_baselines,
    validate_baseline,
)
from store.errors import NotFoundError, ValidationError
from store.models import BaselineRisk, PooledResult, User

log = logging.getLogger(__name__)

_FIELDS = ("analysis", "months", "event_free_percent", "source")
#: Keys of an entry as ``GET /api/estimates`` gives it besides the fields: accepted and
#: ignored, so a client may send an entry back with changes.
_READ_ONLY = ("id", "entered_by", "entered_at")


def number_text(value: float) -> str:
    """A month count or a percentage as a person reads it: 36, 35.5 (no trailing zeros)."""
    return f"{value:.6g}"


def _form_number(value: float) -> str:
    # More digits than number_text: a re-entered form must store what was typed, not a
    # rounded copy of it (0.355 * 100 is 35.49999… in binary).
    return f"{value:.10g}"


# ----------------------------------------------------------------------------- reading input
def read_form(data: Mapping[str, str]) -> CheckedBaseline:
    """The checked entry of an analysis' form on /estimates (raises BaselineError)."""
    return validate_baseline(analysis_key=data.get("analysis"), months=data.get("months"),
                             event_free_percent=data.get("event_free_percent"),
                             source=data.get("source"))


def read_json(body: Mapping[str, Any]) -> CheckedBaseline:
    """The checked entry of a JSON body ``{"analysis", "months", "event_free_percent",
    "source"}`` (raises BaselineError; unknown keys too: a misspelt ``event_free``, a
    proportion?, would otherwise read as a missing field)."""
    refused = unknown_fields(body, _FIELDS, _READ_ONLY, "an assumed control risk")
    if refused:
        raise BaselineError({"body": refused})
    return validate_baseline(analysis_key=body.get("analysis"), months=body.get("months"),
                             event_free_percent=body.get("event_free_percent"),
                             source=body.get("source"))


def snapshot_for(rows: Sequence[PooledResult], key: Any) -> PooledResult:
    """The newest snapshot of ``key`` among ``rows`` (``latest_pooled``): only an analysis
    that has been pooled may be given an assumed control risk, so a typo in a key cannot
    leave an entry nobody sees. NotFoundError otherwise; ValidationError without a key."""
    if not isinstance(key, str) or not key.strip():
        raise ValidationError("analysis is required: the key of the analysis, e.g. "
                              "thalidomide/PFS/post_asct",
                              hint="submit the form on /estimates; the API's keys are the "
                              "`analysis` of GET /api/estimates")
    for row in rows:
        if row.analysis_key == key:
            return row
    shown = key if len(key) <= 80 else key[:79] + "…"
    raise NotFoundError(f"analysis {shown!r} has no pooled snapshot, so no assumed control "
                        "risk can be entered for it",
                        hint="the analyses are those of /estimates (GET /api/estimates); "
                        "run `mmlr pool` for a new one")


# ----------------------------------------------------------------------------- reading entries
def user_emails(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {u.id: u.email for u in session.exec(select(User).where(col(User.id).in_(wanted)))
            if u.id is not None}


@dataclass(frozen=True)
class Baselines:
    """The current entry of each analysis and the e-mail of whoever entered each, read once
    per request and shared by every analysis on the page or in the API's answer."""

    current: dict[str, BaselineRisk]
    emails: dict[int, str]

    def for_analysis(self, key: str) -> BaselineRisk | None:
        """The entry ``key`` uses: its own, else (a ``…/with_strategy`` twin) its primary's."""
        return baseline_for(key, self.current)


def load_baselines(session: Session) -> Baselines:
    current = current_baselines(session)
    return Baselines(current, user_emails(session, (b.entered_by for b in current.values())))


def baseline_json(entry: BaselineRisk | None, emails: Mapping[int, str]) -> dict[str, Any] | None:
    """An entry as the API gives it; ``analysis`` is the key it was entered for (a twin using
    its primary's entry shows the primary's key)."""
    if entry is None:
        return None
    return {"id": entry.id, "analysis": entry.analysis_key, "months": entry.months,
            "event_free_percent": round(entry.event_free * 100, 10), "source": entry.source,
            "entered_by": emails.get(entry.entered_by),
            "entered_at": entry.created_at.isoformat() if entry.created_at else None}


def absolute_json(row: PooledResult, baselines: Baselines) -> dict[str, Any]:
    """``absolute_effect`` and ``baseline`` of an analysis in ``GET /api/estimates``."""
    entry = baselines.for_analysis(row.analysis_key)
    view, _ = absolute_or_reason(row, entry)
    return {"absolute_effect": view, "baseline": baseline_json(entry, baselines.emails)}


# ----------------------------------------------------------------------------- the page
def form_values(entry: BaselineRisk | None) -> dict[str, str]:
    """The form filled from the entry in use, to change it from there (blank without one)."""
    if entry is None:
        return {}
    return {"months": _form_number(entry.months),
            "event_free_percent": _form_number(entry.event_free * 100),
            "source": entry.source}


@dataclass
class AbsoluteBlock:
    """One analysis' "Absolute effect" block: the entry in use (``borrowed`` when it is the
    primary analysis' entry used by a ``…/with_strategy`` twin), the view it gives (or why
    none), the analysis' own earlier entries, and the form's values and errors."""

    key: str
    entry: BaselineRisk | None
    view: dict[str, Any] | None
    error: str | None
    history: list[BaselineRisk] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def borrowed(self) -> bool:
        return self.entry is not None and self.entry.analysis_key != self.key

    @property
    def primary_key(self) -> str | None:
        return self.key[: -len(STRATEGY_SUFFIX)] if self.key.endswith(STRATEGY_SUFFIX) else None


#: Per analysis key, what was typed in its form and what was wrong with it (field → message).
FormState = Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]]


def absolute_blocks(session: Session, rows: Sequence[PooledResult], baselines: Baselines, *,
                    form: FormState | None = None
                    ) -> tuple[dict[str, AbsoluteBlock], dict[int, str]]:
    """The block of every analysis with a pooled estimate, by key, and the e-mails of all the
    entries they show. ``form`` maps a key to the values typed and the errors found, for the
    page shown again after a refused entry."""
    blocks: dict[str, AbsoluteBlock] = {}
    histories = baseline_history(session)
    for row in rows:
        if row.estimate is None:
            continue  # nothing pooled: no HR to turn into an absolute effect
        key = row.analysis_key
        entry = baselines.for_analysis(key)
        view, error = absolute_or_reason(row, entry)
        # Newest first, so the first is the analysis' own current entry; a twin using its
        # primary's entry has no own entries and so no history.
        history = histories.get(key, [])[1:]
        values, errors = (form or {}).get(key, (form_values(entry), {}))
        blocks[key] = AbsoluteBlock(key, entry, view, error, history, dict(values),
                                    dict(errors))
    emails = dict(baselines.emails)
    missing = {b.entered_by for block in blocks.values() for b in block.history} - set(emails)
    emails.update(user_emails(session, missing))
    return blocks, emails


# ----------------------------------------------------------------------------- saving
@dataclass(frozen=True)
class Saved:
    """An entry just stored, the analysis' own entry it replaced as current, and the sentence
    the page (flash) and the API give."""

    row: BaselineRisk
    previous: BaselineRisk | None
    message: str
    created: bool = True


def save_baseline(session: Session, *, entry: CheckedBaseline, user: User,
                  label: str) -> Saved:
    """Store a checked entry for the analysis called ``label`` (the caller commits): what the
    form and the API both do, so they replace and say it the same way."""
    current = current_baselines(session)
    previous = current.get(entry.analysis_key)
    if previous is not None and previous.entered_by == user.id \
            and (previous.months, previous.event_free, previous.source) \
            == (entry.months, entry.event_free, entry.source):
        # A form sent twice (or an API call retried): the entry already current.
        return Saved(previous, None, f"Assumed control risk for {label}: your entry of "
                                     f"{utc_text(previous.created_at)} says the same; nothing "
                                     "changed.", created=False)
    primary = baseline_for(entry.analysis_key, current) if previous is None else None
    row = add_baseline(session, entry=entry, user=user)
    text = (f"Assumed control risk for {label} saved: "
            f"{number_text(row.event_free * 100)}% event-free at {number_text(row.months)} "
            "months.")
    if previous is not None:
        text += f" It replaces the entry of {utc_text(previous.created_at)}, kept in the history."
    elif primary is not None:
        text += " This sensitivity analysis no longer uses its primary analysis' entry."
    return Saved(row, previous, text)

