"""Risk of bias (RoB 2) on the trial page and in the JSON API: reading the form and the JSON
body, and what the page shows. The rules and the queries are ``store.bias``'s; this module
only maps the form's flat fields onto them and arranges the page.

The form's fields are named as the checks name them (``endpoint``,
``domains.<key>.judgment``, ``domains.<key>.support``, ``overall``, ``overall_note``), so an
error lands next to its field and the API's messages use the same names.

Each endpoint also shows whether the people who assessed it agree (``store.bias.
assessor_agreement``), on the page as a line or a warning and in the API as ``assessors`` and
``disagreements``; what is current, and pooled, is still the newest assessment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from screening.web.deps import unknown_fields
from screening.web.templating import utc_text
from store.bias import (
    DOMAINS,
    ENDPOINTS,
    JUDGMENT_LABELS,
    AssessmentError,
    AssessorAgreement,
    CheckedAssessment,
    add_assessment,
    assessment_json,
    assessor_agreement,
    current_assessment,
    history_by_endpoint,
    validate_assessment,
)
from store.models import BiasAssessment, Estimate, Trial, User

#: Keys of a JSON body besides the assessment's own: what ``GET /api/trials`` gives for an
#: assessment, so a client may send one back with changes; accepted and ignored.
_READ_ONLY = ("assessed_by", "created_at", "assessors", "disagreements")
_FIELDS = ("endpoint", "domains", "overall", "overall_note")


def judgment_field(key: str) -> str:
    return f"domains.{key}.judgment"


def support_field(key: str) -> str:
    return f"domains.{key}.support"


def read_form(data: Mapping[str, str]) -> CheckedAssessment:
    """The checked assessment of the trial page's form (raises AssessmentError)."""
    domains = {key: {"judgment": data.get(judgment_field(key)),
                     "support": data.get(support_field(key))} for key in DOMAINS}
    return validate_assessment(endpoint=data.get("endpoint"), domains=domains,
                               overall=data.get("overall"),
                               overall_note=data.get("overall_note"))


def read_json(body: Mapping[str, Any]) -> CheckedAssessment:
    """The checked assessment of a JSON body ``{"endpoint", "domains": {key: {"judgment",
    "support"}}, "overall", "overall_note"}`` (raises AssessmentError). Unknown keys are
    refused rather than ignored: a misspelt ``overal`` would otherwise fall back on the
    suggestion without a word."""
    refused = unknown_fields(body, _FIELDS, _READ_ONLY, "an assessment")
    if refused:
        raise AssessmentError({"body": refused})
    return validate_assessment(endpoint=body.get("endpoint"), domains=body.get("domains"),
                               overall=body.get("overall"),
                               overall_note=body.get("overall_note"))


def form_values(row: BiasAssessment) -> dict[str, str]:
    """The form filled from a stored assessment, to re-assess from it."""
    values = {"endpoint": row.endpoint, "overall": row.overall,
              "overall_note": row.overall_note or ""}
    for key in DOMAINS:
        stored = (row.domains or {}).get(key, {})
        values[judgment_field(key)] = stored.get("judgment") or ""
        values[support_field(key)] = stored.get("support") or ""
    return values


@dataclass
class EndpointBias:
    """One endpoint's part of the section: its current assessment, the earlier ones, and how
    the people who assessed it agree (None when nobody has)."""

    endpoint: str
    current: BiasAssessment | None = None
    history: list[BiasAssessment] = field(default_factory=list)
    agreement: AssessorAgreement | None = None


def bias_sections(session: Session, trial: Trial,
                  estimates: Sequence[Estimate]) -> list[EndpointBias]:
    """One entry per endpoint that has a current estimate or an assessment, in ``ENDPOINTS``
    order (a withdrawn estimate alone does not ask for an assessment)."""
    assert trial.id is not None
    sections = {e.endpoint: EndpointBias(e.endpoint) for e in estimates
                if e.withdrawn_at is None}
    for (_, endpoint), rows in history_by_endpoint(session, trial_ids=[trial.id]).items():
        section = sections.setdefault(endpoint, EndpointBias(endpoint))
        # newest first: the first is current (what pooling uses), whoever assessed it
        section.current, section.history = rows[0], rows[1:]
        section.agreement = assessor_agreement(rows)
    order = {endpoint: i for i, endpoint in enumerate(ENDPOINTS)}
    return sorted(sections.values(), key=lambda s: (order.get(s.endpoint, len(order)),
                                                    s.endpoint))


def assessor_emails(session: Session, sections: Sequence[EndpointBias]) -> dict[int, str]:
    ids = {row.assessed_by for s in sections
           for row in ([s.current] if s.current else []) + s.history}
    if not ids:
        return {}
    return {u.id: u.email for u in session.exec(select(User).where(col(User.id).in_(ids)))
            if u.id is not None}


def page_context(session: Session, trial: Trial,
                 estimates: Sequence[Estimate]) -> dict[str, Any]:
    """What the trial page's risk-of-bias section needs (the form starts blank)."""
    sections = bias_sections(session, trial, estimates)
    return {"rob_sections": sections, "rob_emails": assessor_emails(session, sections),
            "rob_domains": DOMAINS, "rob_judgments": JUDGMENT_LABELS,
            "rob_endpoints": ENDPOINTS, "rob_values": {}, "rob_errors": {},
            "rob_open": False}


def risk_of_bias_json(session: Session) -> dict[int, dict[str, Any]]:
    """Per trial id, its current assessments as ``GET /api/trials`` gives them:
    ``{endpoint: {**assessment_json(...), "assessors", "disagreements"}}``, endpoints in
    ``ENDPOINTS`` order (``agreement_json``)."""
    order = {endpoint: i for i, endpoint in enumerate(ENDPOINTS)}
    by_trial: dict[int, dict[str, Any]] = {}
    for (trial_id, endpoint), rows in sorted(
            history_by_endpoint(session).items(),
            key=lambda item: (item[0][0], order.get(item[0][1], len(order)), item[0][1])):
        # rows are newest first: rows[0] is the current assessment, as current_assessments
        # gives it; the others only count for the assessors' agreement
        by_trial.setdefault(trial_id, {})[endpoint] = {
            **assessment_json(rows[0]), **agreement_json(assessor_agreement(rows))}
    return by_trial


def agreement_json(agreement: AssessorAgreement) -> dict[str, Any]:
    """``assessors`` (how many people assessed) and ``disagreements``: per domain key (or
    ``"overall"``) on which their latest assessments differ, ``{"domain", "judgments":
    {user id: judgment}}`` — the user ids as strings, since they are JSON object keys."""
    return {"assessors": agreement.assessors,
            "disagreements": [{"domain": d.domain,
                               "judgments": {str(user_id): judgment
                                             for user_id, judgment in d.judgments.items()}}
                              for d in agreement.disagreements]}


@dataclass(frozen=True)
class Saved:
    """An assessment just stored, the one it replaced as current, and the sentence saying so."""

    row: BiasAssessment
    previous: BiasAssessment | None
    message: str
    created: bool = True


def save_assessment(session: Session, *, trial: Trial, assessment: CheckedAssessment,
                    user: User) -> Saved:
    """Store a checked assessment (the caller commits): what the trial page's form and the API
    both do, so they replace and say it the same way."""
    assert trial.id is not None
    previous = current_assessment(session, trial.id, assessment.endpoint)
    if previous is not None and previous.assessed_by == user.id \
            and previous.domains == assessment.domains and previous.overall == assessment.overall \
            and previous.overall_note == assessment.overall_note:
        # A form sent twice (or an API call retried) is the assessment already current: a
        # second row would only repeat it in the history and the audit trail.
        return Saved(previous, None, f"Risk of bias for {previous.endpoint}: your assessment "
                                     f"of {utc_text(previous.created_at)} says the same; "
                                     "nothing changed.", created=False)
    row = add_assessment(session, trial=trial, assessment=assessment, user=user)
    return Saved(row, previous, saved_message(row, assessment, previous)
                 + _unused_note(session, trial, assessment.endpoint))


def _unused_note(session: Session, trial: Trial, endpoint: str) -> str:
    """What to say when the trial has estimates, none of ``endpoint``: an assessment of PFS
    for a trial whose result is its TTP (pooled in "PFS (EFS/TTP accepted)") was saved with
    no word, and the analysis went on calling the trial not assessed."""
    endpoints = sorted(set(session.exec(select(Estimate.endpoint).where(
        Estimate.trial_id == trial.id, col(Estimate.withdrawn_at).is_(None)))))
    if not endpoints or endpoint in endpoints:
        return ""
    return (f" {trial.name} has no current {endpoint} estimate: the analyses use its "
            f"{' and '.join(endpoints)} result{'s' if len(endpoints) > 1 else ''}, which this "
            f"assessment does not cover (RoB 2 judges one result: assess "
            f"{' and '.join(endpoints)} too).")


def saved_message(row: BiasAssessment, assessment: CheckedAssessment,
                  previous: BiasAssessment | None) -> str:
    """The one sentence the page (flash) and the API give after saving."""
    text = f"Risk of bias for {row.endpoint} saved: overall {JUDGMENT_LABELS[row.overall]}"
    if assessment.overall_from_suggestion:
        text += " (the judgment the domains give)"
    text += "."
    if previous is not None:
        text += (f" It replaces the assessment of {utc_text(previous.created_at)}, kept in the "
                 "history.")
    return text
