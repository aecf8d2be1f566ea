"""Correcting and withdrawing estimates, with a trail.

Numbers that may already have been pooled (and frozen in a snapshot or a digest) are never
changed in place. A withdrawal keeps the row and says who, when and why; a correction is a new,
unverified estimate whose ``supersedes_id`` points at the old one, which is withdrawn with the
reason "corrected by estimate N". Analyses skip withdrawn estimates (``reports.analyses``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from reports.analyses import comparison_key
from reports.words import hr_ci_text
from screening.web.deps import get_or_404
from screening.web.derivation_inputs import curator_notes, form_fields
from screening.web.extraction import (
    CHECK_PREFIX,
    PRINTED_FIELDS,
    EstimateDraft,
    FieldErrors,
    RepeatedExtraction,
    refuse_repeat,
    refuse_second_extraction,
    save_estimate,
)
from store.audit import audit
from store.errors import ValidationError
from store.models import Estimate, Trial, User, utcnow
from store.numbers import as_float, parse_decimal

REASON_MAX = 1000


class EstimateWithdrawnError(ValidationError):
    """The estimate was withdrawn already: it can be neither withdrawn again, corrected nor
    verified (HTTP 409: the request conflicts with the estimate's state).

    It says who withdrew it and when, and for a corrected estimate what is stored now (the
    current estimate of its corrections, ``current``): a curator who lost a race to correct
    it learns what to check their numbers against (a bare "already withdrawn" told neither).
    """

    http_status = 409

    def __init__(self, estimate: Estimate) -> None:
        self.estimate = estimate
        self.by: str | None = None
        self.current: Estimate | None = None
        session = object_session(estimate)
        if isinstance(session, Session):
            if estimate.withdrawn_by is not None:
                user = session.get(User, estimate.withdrawn_by)
                self.by = user.email if user is not None else None
            self.current = current_successor(session, estimate)
        reason = f" ({estimate.withdrawn_reason})" if estimate.withdrawn_reason else ""
        who = f" by {self.by}" if self.by else ""
        when = (f" at {estimate.withdrawn_at:%Y-%m-%d %H:%M} UTC"
                if estimate.withdrawn_at is not None else "")
        now = ""
        if self.current is not None:
            c = self.current
            now = (f"; estimate {c.id} now says {c.endpoint} HR "
                   f"{hr_ci_text(c.hr, c.ci_low, c.ci_high)}"
                   + (f", data cut {c.data_cut.isoformat()}" if c.data_cut else "")
                   + ("" if c.verified else " (unverified)"))
        super().__init__(
            f"estimate {estimate.id} was already withdrawn{reason}{who}{when}{now}",
            hint=(f"nothing you sent was saved; check your numbers against estimate "
                  f"{self.current.id} and correct that one if they are still needed"
                  if self.current is not None else
                  "withdrawn estimates stay on record as they were; "
                  "enter a new estimate on the trial page instead"),
        )


def current_successor(session: Session, estimate: Estimate) -> Estimate | None:
    """The current estimate that replaced ``estimate`` through one correction or a chain of
    them; None when it was withdrawn without one (or its last correction was withdrawn)."""
    seen: set[int] = set()
    step = estimate
    while step.id is not None and step.id not in seen:
        seen.add(step.id)
        nxt = session.exec(select(Estimate).where(Estimate.supersedes_id == step.id)
                           .order_by(col(Estimate.id))).first()
        if nxt is None:
            return None
        if nxt.withdrawn_at is None:
            return nxt
        step = nxt
    return None


def load_estimate(session: Session, estimate_id: int) -> Estimate:
    """The estimate, or a 404 naming it (the trial page's routes and the JSON API's)."""
    return get_or_404(session, Estimate, estimate_id,
                      missing=f"estimate {estimate_id} does not exist")


def ensure_current(estimate: Estimate) -> None:
    """Raise EstimateWithdrawnError when ``estimate`` is withdrawn."""
    if estimate.withdrawn_at is not None:
        raise EstimateWithdrawnError(estimate)


def read_reason(data: dict[str, Any], name: str = "reason", *, required: bool = True) -> str:
    """The stripped reason text; FieldErrors naming ``name`` when missing or too long."""
    text = " ".join(str(data.get(name) or "").split())
    if required and not text:
        raise FieldErrors({name: "is required: say why the estimate is withdrawn"})
    if len(text) > REASON_MAX:
        raise FieldErrors({name: f"is longer than {REASON_MAX} characters"})
    return text


def withdrawn_as_asked(session: Session, estimate: Estimate, reason: Any) -> bool:
    """Whether a request to withdraw ``estimate`` with ``reason`` (as sent: None, blank or
    text) asks for what is so already (a retry after a lost answer, a double click): the
    estimate is withdrawn, for that reason or with none given, and not by a correction. A
    corrected estimate's data are still in the analyses, as its correction's, so a request to
    take them out is not done and stays refused, as is one giving another reason."""
    if estimate.withdrawn_at is None:
        return False
    corrected = session.exec(select(Estimate.id).where(
        Estimate.supersedes_id == estimate.id)).first()
    if corrected is not None:
        return False
    sent = " ".join(reason.split()) if isinstance(reason, str) else ""
    return not sent or sent == estimate.withdrawn_reason


def withdraw_estimate(session: Session, estimate: Estimate, *, reason: str, user: User,
                      action: str = "estimate.withdraw", **details: Any) -> None:
    """Mark ``estimate`` withdrawn (the caller commits).

    The row is updated only while it is still current (a conditional UPDATE), so two curators
    withdrawing or correcting the same estimate at once cannot both succeed.
    """
    ensure_current(estimate)
    when = utcnow()
    result = session.exec(
        update(Estimate)
        .where(col(Estimate.id) == estimate.id, col(Estimate.withdrawn_at).is_(None))
        .values(withdrawn_at=when, withdrawn_by=user.id, withdrawn_reason=reason)
    )
    if result.rowcount != 1:
        session.rollback()
        session.refresh(estimate)
        raise EstimateWithdrawnError(estimate)
    session.refresh(estimate)
    audit(session, action, actor=user.email, object_type="estimate", object_id=estimate.id,
          reason=reason, trial_id=estimate.trial_id, endpoint=estimate.endpoint,
          hr=estimate.hr, verified=estimate.verified, **details)


def correct_estimate(session: Session, old: Estimate, *, trial: Trial, draft: EstimateDraft,
                     user: User, note: str = "") -> Estimate:
    """Save ``draft`` as a new unverified estimate superseding ``old`` and withdraw ``old``
    (the caller commits). Returns the new estimate."""
    ensure_current(old)
    _refuse_unchanged(old, draft.values)
    refuse_second_extraction(session, trial=trial, values=draft.values, replacing=old.id)
    if (warning := direction_warning(old, draft.values)) is not None:
        draft.warnings.append(warning)
    values = dict(draft.values)
    # A correction must be checked again by someone: whatever the form said, it starts
    # unverified.
    values["verified"] = False
    values["supersedes_id"] = old.id
    if not values.get("citation"):
        values["citation"] = old.citation
    new = save_estimate(session, trial=trial, draft=EstimateDraft(values, draft.warnings),
                        user=user)
    reason = f"corrected by estimate {new.id}" + (f": {note}" if note else "")
    old_numbers = {"hr": old.hr, "ci_low": old.ci_low, "ci_high": old.ci_high,
                   "se": old.se, "method": old.method, "verified": old.verified,
                   "derivation_inputs": old.derivation_inputs, "printed": old.printed}
    withdraw_estimate(session, old, reason=reason, user=user)
    audit(session, "estimate.correct", actor=user.email, object_type="estimate",
          object_id=new.id, supersedes=old.id, note=note or None, old=old_numbers,
          new={"hr": new.hr, "ci_low": new.ci_low, "ci_high": new.ci_high, "se": new.se,
               "method": new.method, "derivation_inputs": new.derivation_inputs,
               "printed": new.printed})
    return new


#: The orientation of typed numbers, in the words of a warning.
_ARMS = {"maint_vs_control": "maintenance vs control", "control_vs_maint": "control vs maintenance"}


def direction_warning(old: Estimate, values: Mapping[str, Any]) -> str | None:
    """A warning when the correction puts the HR on the other side of 1 from the estimate it
    corrects: a correction fixes a digit far more often than it reverses which arm did better,
    while numbers read in the wrong orientation (typed for control vs maintenance, read as
    maintenance vs control) do exactly that. The curator is asked to confirm the direction;
    the warning stays in the estimate's notes for whoever verifies it."""
    new_log = float(values["log_hr"])
    if not (old.log_hr < 0 < new_log or new_log < 0 < old.log_hr):
        return None

    def favours(log_hr: float) -> str:
        return "maintenance" if log_hr < 0 else "control"

    new = hr_ci_text(values.get("hr"), values.get("ci_low"), values.get("ci_high"))
    said = (f"the corrected HR {new} favours {favours(new_log)}, where estimate {old.id} "
            f"({hr_ci_text(old.hr, old.ci_low, old.ci_high)}) favoured {favours(old.log_hr)} "
            "(both as maintenance vs control): confirm the direction")
    orientation = str(values.get("orientation_entered") or "maint_vs_control")
    if values.get("method") in ("medians", "km_curves"):
        return said + "; check that each arm's numbers were entered for that arm"
    return (f"{said}; the numbers were read as typed for {_ARMS.get(orientation, orientation)}, "
            "and if the paper gives them the other way round, correct it again with the other "
            "orientation")


def correction_sent_again(session: Session, old: Estimate, *, trial: Trial,
                          draft: EstimateDraft) -> Estimate | None:
    """The current estimate that corrected ``old`` when ``draft`` is that correction again
    (the same report, endpoint, setting, comparison, data cut, method and numbers), else None.

    The Correct form sent twice (a double click, Back then Save) found its estimate withdrawn
    by the first and answered 409 "already withdrawn": the curator, told of a conflict, had
    done nothing wrong and had nothing to redo."""
    successor = session.exec(select(Estimate).where(
        Estimate.supersedes_id == old.id, col(Estimate.withdrawn_at).is_(None))).first()
    if successor is None:
        return None
    try:
        refuse_repeat(session, trial=trial, draft=draft)
    except RepeatedExtraction as exc:
        return successor if exc.estimate_id == successor.id else None
    return None


#: What a correction may change: any of these differing makes it one. The numbers (stored as
#: maintenance vs control) and a derived HR's inputs are compared as numbers besides.
_SAME_FIELDS = ("report_id", "endpoint", "setting", "data_cut", "data_cut_label",
                "n_maintenance", "n_control", "events", "method", "approximate")


def _parsed(value: Any) -> Any:
    """``value`` as compared by :func:`_refuse_unchanged`: a number, or text that reads as
    one, as a float ("0.70", "0.7" and 0.7 are one number); other text with its runs of white
    space made one space; objects and lists value by value."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return as_float(value)
    if isinstance(value, str):
        try:
            return parse_decimal(value)
        except ValueError:
            return " ".join(value.split())
    if isinstance(value, Mapping):
        return {str(k): _parsed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_parsed(v) for v in value]
    return value


def _same_number(a: float | None, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-12)


def _says_the_same(old: Estimate, values: Mapping[str, Any]) -> bool:
    """Whether ``values`` (an extraction as parsed) say everything ``old`` says: its report,
    endpoint, setting, contrast, data cut, arm sizes, events, method, numbers, a derived HR's
    inputs and the notes typed (not the *Check at entry* lines the checks add). What the
    numbers say is compared, not how they were written: "0.70" is 0.7, and an HR typed as
    control vs maintenance (2.00) is the same estimate as its inverse sent back as
    maintenance vs control (0.5). A ``comparison`` left out is the estimate's."""
    def own_notes(text: str | None) -> list[str]:
        return [line for line in (text or "").splitlines()
                if line and not line.startswith(CHECK_PREFIX)]

    typed = values.get("comparison")
    return (all(getattr(old, name) == values.get(name) for name in _SAME_FIELDS)
            and (typed is None or comparison_key(typed) == comparison_key(old.comparison))
            and all(_same_number(getattr(old, name), values.get(name))
                    for name in ("hr", "ci_low", "ci_high", "log_hr", "se"))
            and _parsed(old.derivation_inputs) == _parsed(values.get("derivation_inputs"))
            and own_notes(old.notes) == own_notes(values.get("notes")))


def extraction_sent_again(session: Session, repeat: RepeatedExtraction,
                          draft: EstimateDraft) -> Estimate | None:
    """The current estimate ``repeat`` names when the new estimate ``draft`` is that one
    again in every field it gives (a client retrying a request whose answer it lost), else
    None: a repeat of its numbers with another note, arm size or citation is refused as
    ``repeat`` says, naming the estimate to correct. Whether it is verified, and by whom it was
    entered, are the estimate's state, not what was sent: they are not compared."""
    old = session.get(Estimate, repeat.estimate_id)
    if old is None or old.withdrawn_at is not None:
        return None
    values = draft.values
    if _says_the_same(old, values) and old.citation == values.get("citation"):
        return old
    return None


def _refuse_unchanged(old: Estimate, values: Mapping[str, Any]) -> None:
    """FieldErrors for a correction that changes nothing (a Correct form sent untouched, an
    API call with the same numbers, an estimate's JSON sent back as GET gave it): it would
    only withdraw a verified estimate for an unverified copy and take the trial out of its
    analyses until someone verifies it. What the numbers say is compared, not how they were
    written: "0.70" is 0.7, and an HR typed as control vs maintenance (2.00) is the same
    estimate as its inverse sent back as maintenance vs control (0.5)."""
    if _says_the_same(old, values):
        raise FieldErrors({"hr": f"is what estimate {old.id} already says, with everything "
                                 "else: nothing changed, so nothing was saved (a correction "
                                 "changes a field, or leave the estimate as it is)"})


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def form_values(estimate: Estimate) -> dict[str, str]:
    """The extraction form's fields filled from a stored estimate.

    A reported HR and CI come back as typed from the paper (``Estimate.printed``: "0.50"
    rather than the float's "0.5"), in the orientation they were typed in; an estimate stored
    before the text was kept gives its numbers, as maintenance vs control (the stored
    orientation).
    A derived HR is given back as its inputs (P value, O−E and V, medians…, in the orientation
    they were entered), not as the derived HR and CI: saving the form unchanged re-derives the
    same number. A derived estimate stored before its inputs were kept gets the derived HR and
    CI and empty input fields; the edit page says so.
    """
    values = {
        "report_id": "" if estimate.report_id is None else str(estimate.report_id),
        "endpoint": estimate.endpoint,
        "setting": estimate.setting,
        "comparison": estimate.comparison,
        "method": estimate.method,
        "orientation": "maint_vs_control",
        "hr": _num(estimate.hr),
        "ci_low": _num(estimate.ci_low),
        "ci_high": _num(estimate.ci_high),
        "data_cut": estimate.data_cut.isoformat() if estimate.data_cut else "",
        "data_cut_label": estimate.data_cut_label or "",
        "n_maintenance": "" if estimate.n_maintenance is None else str(estimate.n_maintenance),
        "n_control": "" if estimate.n_control is None else str(estimate.n_control),
        "events": "" if estimate.events is None else str(estimate.events),
        "notes": estimate.notes or "",
    }
    printed = estimate.printed
    if estimate.method == "reported_ci" and printed and all(
            isinstance(printed.get(name), str) for name in PRINTED_FIELDS):
        values.update({name: printed[name] for name in PRINTED_FIELDS},
                      orientation=estimate.orientation_entered or "maint_vs_control")
    derivation = form_fields(estimate)
    if derivation:
        # The derived HR/CI are results, not inputs; "hr" comes back only when it was typed
        # (to give the direction of a P value).
        for name in ("hr", "ci_low", "ci_high"):
            values[name] = ""
        values.update(derivation)
        values["notes"] = curator_notes(estimate)
    return values


#: What a correction keeps from the estimate it corrects when the request leaves it out: what
#: the estimate *is* (its report, endpoint, setting, contrast, data cut, arm sizes, events and
#: notes), as the Correct form comes filled with it. The number itself (HR and CI, or the
#: inputs it is derived from) is always sent. Without this an API client that sends only the
#: number that was wrong stores an undated copy, and an undated estimate counts as the trial's
#: oldest cut: the analyses would go back to the trial's previous data cut.
KEPT_BY_CORRECTION = ("report_id", "endpoint", "setting", "comparison", "data_cut",
                      "data_cut_label", "n_maintenance", "n_control", "events", "notes")


def with_kept_fields(old: Estimate, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a correction request) with each field of :data:`KEPT_BY_CORRECTION` it leaves
    out taken from ``old``, in the form's words; a field sent, null included, is the client's.

    The ``orientation`` of the numbers, left out, is the one ``old`` was entered in
    (``orientation_entered``): a client correcting an HR typed from the paper for control vs
    maintenance sends the paper's number again, and read as maintenance vs control it was
    stored inverted (1/HR). An estimate's JSON sent back (it carries ``orientation_entered``,
    read only) gives its ``hr``, ``ci_low`` and ``ci_high`` as maintenance vs control, as GET
    returns them, so its numbers are read that way; a derived estimate's JSON carries its
    ``orientation`` in ``derivation_inputs``."""
    stored = form_values(old)
    kept = {name: stored[name] for name in KEPT_BY_CORRECTION if name not in data}
    if "orientation" not in data:
        kept["orientation"] = ("maint_vs_control" if "orientation_entered" in data
                               else old.orientation_entered or "maint_vs_control")
    return {**kept, **data}
