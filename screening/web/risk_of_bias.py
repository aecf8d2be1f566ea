"""Risk of bias (RoB 2) on the trial page and in the JSON API: reading the form and the JSON
body, and what the page shows. The rules and the queries are ``store.bias``'s; this module
only maps the form's flat fields onto them and arranges the page.

The form's fields are named as the checks name them (``endpoint``,
``domains.<key>.judgment``, ``domains.<key>.support``, ``overall``, ``overall_note``), so an
error lands next to its field and the API's messages use the same names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlmodel import Session, col, select

from store.bias import (
    DOMAINS,
    ENDPOINTS,
    JUDGMENT_LABELS,
    AssessmentError,
    CheckedAssessment,
    assessment_history,
    assessment_json,
    current_assessments,
    validate_assessment,
)
from store.models import BiasAssessment, Estimate, Trial, User

#: Keys of a JSON body besides the assessment's own: what ``GET /api/trials`` gives for an
#: assessment, so a client may send one back with changes; accepted and ignored.
_READ_ONLY = ("assessed_by", "created_at")
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
    unknown = sorted(str(k) for k in body if k not in _FIELDS and k not in _READ_ONLY)
    if unknown:
        raise AssessmentError({"body": (f"unknown field {', '.join(map(repr, unknown))}: an "
                                        f"assessment has {', '.join(_FIELDS)}")})
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
    """One endpoint's part of the section: its current assessment and the earlier ones."""

    endpoint: str
    current: BiasAssessment | None = None
    history: list[BiasAssessment] = field(default_factory=list)


def bias_sections(session: Session, trial: Trial,
                  estimates: Sequence[Estimate]) -> list[EndpointBias]:
    """One entry per endpoint that has a current estimate or an assessment, in ``ENDPOINTS``
    order (a withdrawn estimate alone does not ask for an assessment)."""
    assert trial.id is not None
    sections = {e.endpoint: EndpointBias(e.endpoint) for e in estimates
                if e.withdrawn_at is None}
    for row in assessment_history(session, trial.id):  # newest first
        section = sections.setdefault(row.endpoint, EndpointBias(row.endpoint))
        if section.current is None:
            section.current = row
        else:
            section.history.append(row)
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
    ``{endpoint: assessment_json(...)}``, endpoints in ``ENDPOINTS`` order."""
    order = {endpoint: i for i, endpoint in enumerate(ENDPOINTS)}
    by_trial: dict[int, dict[str, Any]] = {}
    for (trial_id, endpoint), row in sorted(
            current_assessments(session).items(),
            key=lambda item: (item[0][0], order.get(item[0][1], len(order)), item[0][1])):
        by_trial.setdefault(trial_id, {})[endpoint] = assessment_json(row)
    return by_trial


def saved_message(row: BiasAssessment, assessment: CheckedAssessment,
                  previous: BiasAssessment | None) -> str:
    """The one sentence the page (flash) and the API give after saving."""
    text = f"Risk of bias for {row.endpoint} saved: overall {JUDGMENT_LABELS[row.overall]}"
    if assessment.overall_from_suggestion:
        text += " (the judgment the domains give)"
    text += "."
    if previous is not None:
        when = previous.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        text += f" It replaces the assessment of {when}, kept in the history."
    return text
