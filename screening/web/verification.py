"""Who may mark an estimate *verified*.

Analyses pool only verified estimates, and "verified" means that a second person checked the
numbers against the full text: data extraction in duplicate, as Cochrane's MECIR standards
expect. With ``Settings.verify_second_person`` on (``MMLR_VERIFY_SECOND_PERSON``, the default)
the person who entered an estimate (``Estimate.created_by``; for a correction, whoever
corrected it) can neither save it verified nor verify it later: another curator or an admin
does. Un-verifying is always allowed: it only takes an estimate out of the analyses until
someone checks it again. Seed evidence (``mmlr init``) has no creator and is loaded verified:
it is published data with its citation, checked when the seed was written.

The trial page and the JSON API call the same functions, so they give the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from screening.web.corrections import ensure_current
from screening.web.extraction import EstimateDraft, FieldErrors, _Reader, parse_estimate
from store.audit import audit
from store.errors import PermissionDeniedError
from store.models import Estimate, Trial, TrialReport, User

SETTING = "MMLR_VERIFY_SECOND_PERSON"
#: The field error on "verified" of a new estimate (the form prefixes the label "Verified").
SAVED_VERIFIED = (
    "cannot be set by the person entering the estimate: a second person (another curator "
    f"or an admin) verifies it once it is saved ({SETTING} is on)"
)


def parse_new_estimate(data: Mapping[str, Any], *, trial: Trial, reports: list[TrialReport],
                       second_person: bool) -> EstimateDraft:
    """``parse_estimate`` plus the second-person rule on the ``verified`` field.

    Raises FieldErrors naming every bad field, "verified" among them when it is ticked while
    the rule is on (the person entering an estimate is always its creator). Corrections do not
    come here: they start unverified whatever they say (``corrections.correct_estimate``).
    """
    refused = {"verified": SAVED_VERIFIED} if second_person and _Reader(data).flag(
        "verified") else {}
    try:
        draft = parse_estimate(data, trial=trial, reports=reports)
    except FieldErrors as exc:
        if not refused:
            raise
        # one answer with every problem, so nobody fixes the numbers only to be refused again
        raise FieldErrors({**exc.fields, **refused}) from None
    if refused:
        raise FieldErrors(refused)
    return draft


def may_verify(estimate: Estimate, user: User, *, second_person: bool) -> bool:
    """Whether ``user`` may mark ``estimate`` verified (anyone may un-verify it)."""
    return not (second_person and estimate.created_by is not None
                and estimate.created_by == user.id)


def set_verified(session: Session, estimate: Estimate, *, verified: bool, user: User,
                 second_person: bool) -> bool:
    """Mark ``estimate`` verified by ``user`` or unverified (the caller commits).

    Returns whether anything changed (asking for the state it is already in changes nothing
    and writes no audit row). Raises EstimateWithdrawnError for a withdrawn estimate and
    PermissionDeniedError when the rule is on and ``user`` entered the estimate.
    """
    ensure_current(estimate)  # a withdrawn estimate stays exactly as it was
    if estimate.verified == verified:
        return False
    if verified and not may_verify(estimate, user, second_person=second_person):
        raise PermissionDeniedError(
            f"estimate {estimate.id} was entered by you ({user.email}): a second person, "
            f"another curator or an admin, must verify it ({SETTING} is on)",
            hint="ask a colleague to check the numbers against the full text",
        )
    estimate.verified = verified
    estimate.verified_by = user.id if verified else None
    session.add(estimate)
    audit(session, "estimate.verify" if verified else "estimate.unverify", actor=user.email,
          object_type="estimate", object_id=estimate.id, created_by=estimate.created_by)
    return True
