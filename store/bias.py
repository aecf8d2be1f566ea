"""Risk of bias of a trial's result (Cochrane RoB 2): the domains, the rule for the overall
judgment, the checks of an assessment, and the queries for the current one.

RoB 2 (Sterne et al., BMJ 2019;366:l4898) judges one *result* of a randomised trial — here one
trial's hazard ratio for one endpoint — in five domains (``DOMAINS``), each ``low``,
``some_concerns`` or ``high`` (``JUDGMENTS``), and derives the overall judgment from them:

- low only when every domain is low;
- high when any domain is high;
- otherwise some concerns — which the reviewers may raise to high when concerns in several
  domains together lower their confidence in the result substantially. That is a judgment,
  not arithmetic, so mmlr accepts it only with ``overall_note`` saying why, and only when
  more than one domain has some concerns.

An overall judgment *below* the worst domain, or above "low" when every domain is low, is not
RoB 2 and is refused (``validate_assessment``). Assessments are append-only
(``store.models.BiasAssessment``): re-assessing adds a row, the newest per trial and endpoint
is current (``current_assessments``) and the older ones stay as its history
(``assessment_history``).

Cochrane asks for two reviewers to assess independently and reconcile their disagreements.
The rows keep who assessed, so ``assessor_agreement`` can tell — from one endpoint's rows —
each person's latest assessment and where those differ. It only reports: the current
assessment, the one the analyses use, stays the newest row whoever saved it.

This lives in ``store`` rather than in the web app because the reports, which may import only
``store``, will read the current judgments (e.g. to leave high-risk results out of a
sensitivity analysis); the trial page and the JSON API call the same checks, so they give the
same messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from store.audit import audit
from store.errors import FieldsError
from store.models import BiasAssessment, Trial, User
from store.text import quoted

#: The endpoints an assessment is for: the values of ``Estimate.endpoint`` (the extraction
#: form's ``screening.web.extraction.ENDPOINTS``; a test keeps the two equal).
ENDPOINTS: tuple[str, ...] = ("PFS", "EFS", "TTP", "OS")
#: The five RoB 2 domains in the tool's order (D1–D5), with the tool's names.
DOMAINS: dict[str, str] = {
    "randomization": "Bias arising from the randomization process",
    "deviations": "Bias due to deviations from intended interventions",
    "missing_data": "Bias due to missing outcome data",
    "measurement": "Bias in measurement of the outcome",
    "reporting": "Bias in selection of the reported result",
}
#: The judgments, from least to most risk: the order is what "lower" and "worst" mean.
JUDGMENTS: tuple[str, ...] = ("low", "some_concerns", "high")
JUDGMENT_LABELS: dict[str, str] = {"low": "Low", "some_concerns": "Some concerns",
                                   "high": "High"}
#: Longest support text of a domain, and longest overall note (a paragraph or two each).
TEXT_MAX = 4000

_RANK = {judgment: rank for rank, judgment in enumerate(JUDGMENTS)}
_ONE_OF = "low, some_concerns or high"
#: A missing judgment, as the form's choices read (a curator who left "— choose —" never saw
#: the code some_concerns); the codes are listed when a wrong value is sent, which only the
#: API can do.
_CHOOSE = "choose low, some concerns or high"


class AssessmentError(FieldsError):
    """Bad fields of an assessment: ``endpoint``, ``domains``, ``domains.<key>``,
    ``domains.<key>.judgment``, ``domains.<key>.support``, ``overall``, ``overall_note``."""


@dataclass(frozen=True)
class CheckedAssessment:
    """An assessment that passed ``validate_assessment``, ready to store.

    ``domains`` has every domain in ``DOMAINS`` order as ``{"judgment", "support"}`` (support
    stripped, ``""`` when none was given); ``suggested`` is the overall judgment the RoB 2
    algorithm gives for the domains and ``overall_from_suggestion`` whether ``overall`` was
    left blank and took it.
    """

    endpoint: str
    domains: dict[str, dict[str, str]]
    overall: str
    overall_note: str | None
    suggested: str
    overall_from_suggestion: bool


# ----------------------------------------------------------------------------- rules
def suggested_overall(domains: Mapping[str, Any]) -> str:
    """The overall judgment RoB 2's algorithm gives for five domain judgments: ``low`` only
    when all are low, ``high`` when any is high, otherwise ``some_concerns``.

    ``domains`` maps each key of ``DOMAINS`` to ``{"judgment": ...}`` (as stored). Raises
    AssessmentError naming the domain when one is missing or its judgment is not valid: a
    suggestion from four domains would look like a judgment of five.
    """
    errors: dict[str, str] = {}
    checked = _read_domains(domains, errors)
    if errors:
        raise AssessmentError(errors)
    return _algorithm([d["judgment"] for d in checked.values()])


def _algorithm(judgments: Iterable[str]) -> str:
    ranks = [_RANK[j] for j in judgments]
    if all(rank == _RANK["low"] for rank in ranks):
        return "low"
    if any(rank == _RANK["high"] for rank in ranks):
        return "high"
    return "some_concerns"


def validate_assessment(*, endpoint: Any, domains: Any, overall: Any = None,
                        overall_note: Any = None) -> CheckedAssessment:
    """Check an assessment as a form or a JSON body gives it, and complete it.

    ``overall`` left blank (``None`` or ``""``) takes the suggestion of the domains
    (``suggested_overall``). Raises AssessmentError naming every bad field at once (so nobody
    fixes one only to be refused for the next): an endpoint other than ``ENDPOINTS``, a
    missing or unknown domain, a judgment other than ``JUDGMENTS``, text that is not text or
    too long, an overall judgment lower than the worst domain (or above low when all are low),
    and ``high`` overall without a note when no domain is high.
    """
    errors: dict[str, str] = {}
    checked_endpoint = _read_endpoint(endpoint, errors)
    checked_domains = _read_domains(domains, errors)
    note = _read_text(overall_note, "overall_note", errors)
    given = _read_overall(overall, errors)
    suggested = None
    if len(checked_domains) == len(DOMAINS):  # every domain judged: the rule can be applied
        suggested = _algorithm(d["judgment"] for d in checked_domains.values())
        if given is not None:
            _check_overall(given, checked_domains, note, errors)
    if errors:
        raise AssessmentError(errors)
    assert checked_endpoint is not None and suggested is not None  # else errors is not empty
    return CheckedAssessment(endpoint=checked_endpoint, domains=checked_domains,
                             overall=given or suggested, overall_note=note,
                             suggested=suggested, overall_from_suggestion=given is None)


def _read_endpoint(value: Any, errors: dict[str, str]) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors["endpoint"] = f"is required: one of {', '.join(ENDPOINTS)}"
        return None
    if not isinstance(value, str) or value.strip() not in ENDPOINTS:
        errors["endpoint"] = (f"{quoted(value)} is not an endpoint: use one of "
                              f"{', '.join(ENDPOINTS)}")
        return None
    return value.strip()


def _read_domains(value: Any, errors: dict[str, str]) -> dict[str, dict[str, str]]:
    """The domains that are valid, in ``DOMAINS`` order; an error for each one that is not."""
    if not isinstance(value, Mapping):
        errors["domains"] = (f"must be an object with the five RoB 2 domains: "
                             f"{', '.join(DOMAINS)}")
        return {}
    unknown = [str(key) for key in value if key not in DOMAINS]
    if unknown:
        errors["domains"] = (f"unknown domain {', '.join(map(repr, unknown))}: the RoB 2 "
                             f"domains are {', '.join(DOMAINS)}")
    checked: dict[str, dict[str, str]] = {}
    for key, label in DOMAINS.items():
        name = f"domains.{key}"
        entry = value.get(key)
        if entry is None:
            errors[name] = f"is missing: judge {label.lower()} ({_ONE_OF})"
            continue
        if not isinstance(entry, Mapping):
            errors[name] = "must be an object with judgment and support"
            continue
        extra = [str(k) for k in entry if k not in ("judgment", "support")]
        if extra:
            errors[name] = (f"unknown field {', '.join(map(repr, extra))}: a domain has "
                            "judgment and support")
        judgment = entry.get("judgment")
        support = _read_text(entry.get("support"), f"{name}.support", errors)
        if judgment is None or (isinstance(judgment, str) and not judgment.strip()):
            errors[f"{name}.judgment"] = f"is required for {label.lower()}: {_CHOOSE}"
        elif not isinstance(judgment, str) or judgment.strip() not in JUDGMENTS:
            errors[f"{name}.judgment"] = f"{quoted(judgment)} is not a judgment: use {_ONE_OF}"
        elif name not in errors and f"{name}.support" not in errors:
            checked[key] = {"judgment": judgment.strip(), "support": support or ""}
    return checked


def _read_overall(value: Any, errors: dict[str, str]) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # blank: the suggestion of the domains
    if not isinstance(value, str) or value.strip() not in JUDGMENTS:
        errors["overall"] = (f"{quoted(value)} is not a judgment: use {_ONE_OF}, or leave it "
                             "blank for the judgment the domains give")
        return None
    return value.strip()


def _check_overall(overall: str, domains: Mapping[str, Mapping[str, str]], note: str | None,
                   errors: dict[str, str]) -> None:
    """RoB 2's limits on the overall judgment, given valid domains."""
    worst = max((d["judgment"] for d in domains.values()), key=_RANK.__getitem__)
    if _RANK[overall] < _RANK[worst]:
        named = [key for key, d in domains.items() if d["judgment"] == worst]
        # In the words of the form (the API's clients know the codes these stand for).
        where = "; ".join(DOMAINS[key].lower() for key in named)
        errors["overall"] = (f"“{JUDGMENT_LABELS[overall]}” is lower than the worst domain "
                             f"judgment (“{JUDGMENT_LABELS[worst]}” for {where}): RoB 2's "
                             "overall judgment is at least the worst domain's")
    elif worst == "low" and overall != "low":
        errors["overall"] = (f"“{JUDGMENT_LABELS[overall]}” is higher than the domains allow: "
                             "every domain is low, and RoB 2 judges such a result low overall")
    elif overall == "high" and worst == "some_concerns" and len(
            concerned := [key for key, d in domains.items()
                          if d["judgment"] == "some_concerns"]) < 2:
        # RoB 2 raises some concerns to high only for concerns "in multiple domains" that
        # together lower confidence substantially (Sterne et al. 2019, Table 2); one domain's
        # concerns make "some concerns", however serious the note says they are.
        errors["overall"] = (f"“{JUDGMENT_LABELS['high']}” needs a domain at high risk or "
                             "some concerns in several domains, and only "
                             f"{DOMAINS[concerned[0]].lower()} has some concerns: RoB 2 "
                             "judges such a result “Some concerns” overall (or judge that "
                             "domain high, if its concerns are that serious)")
    elif overall == "high" and worst == "some_concerns" and not note:
        # RoB 2 allows "high" when some concerns in several domains together lower confidence
        # substantially; that is the reviewer's judgment, so it must be written down.
        errors["overall_note"] = ("is required to judge overall 'high' when no domain is high: "
                                  "say why the concerns together put the result at high risk")


def _read_text(value: Any, name: str, errors: dict[str, str]) -> str | None:
    """Free text, stripped, with a browser's CRLF line ends made LF; None when blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = "must be text"
        return None
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > TEXT_MAX:
        errors[name] = f"is longer than {TEXT_MAX} characters"
        return None
    return text or None



# ----------------------------------------------------------------------------- storing
def add_assessment(session: Session, *, trial: Trial, assessment: CheckedAssessment,
                   user: User) -> BiasAssessment:
    """Store ``assessment`` of ``trial`` by ``user`` as a new row (the caller commits); it
    becomes the current one of its endpoint, the previous one stays in the history. Audited
    as ``bias.assess`` with the judgments and the id of the assessment it replaces."""
    if trial.id is None or user.id is None:
        raise ValueError("the trial and the user must be stored before they assess")
    previous = current_assessment(session, trial.id, assessment.endpoint)
    row = BiasAssessment(trial_id=trial.id, endpoint=assessment.endpoint,
                         domains=assessment.domains, overall=assessment.overall,
                         overall_note=assessment.overall_note, assessed_by=user.id)
    session.add(row)
    session.flush()
    audit(session, "bias.assess", actor=user.email, object_type="bias_assessment",
          object_id=row.id, trial=trial.name, trial_id=trial.id, endpoint=row.endpoint,
          overall=row.overall, suggested=assessment.suggested,
          domains={key: d["judgment"] for key, d in assessment.domains.items()},
          replaces=previous.id if previous is not None else None)
    return row


# ----------------------------------------------------------------------------- reading
def current_assessments(session: Session, *, trial_ids: Iterable[int] | None = None,
                        ) -> dict[tuple[int, str], BiasAssessment]:
    """The current assessment per (trial id, endpoint): the newest row of each, by id (rows
    are only ever added, so the highest id is the last one saved, whatever the clocks of the
    processes that wrote them said). ``trial_ids`` limits it to those trials."""
    newest = select(func.max(BiasAssessment.id)).group_by(
        col(BiasAssessment.trial_id), col(BiasAssessment.endpoint))
    query = select(BiasAssessment).where(col(BiasAssessment.id).in_(newest))
    if trial_ids is not None:
        ids = list(trial_ids)
        if not ids:
            return {}
        query = query.where(col(BiasAssessment.trial_id).in_(ids))
    return {(row.trial_id, row.endpoint): row for row in session.exec(query)}


def current_assessment(session: Session, trial_id: int,
                       endpoint: str) -> BiasAssessment | None:
    """The current assessment of one trial's endpoint, or None when it has none."""
    return session.exec(select(BiasAssessment).where(
        BiasAssessment.trial_id == trial_id, BiasAssessment.endpoint == endpoint,
    ).order_by(col(BiasAssessment.id).desc())).first()


def assessment_history(session: Session, trial_id: int) -> list[BiasAssessment]:
    """Every assessment of the trial, newest first: for each endpoint the first one is its
    current assessment and the others are the earlier versions."""
    return list(session.exec(select(BiasAssessment).where(
        BiasAssessment.trial_id == trial_id).order_by(col(BiasAssessment.id).desc())))


def history_by_endpoint(session: Session, *, trial_ids: Iterable[int] | None = None,
                        ) -> dict[tuple[int, str], list[BiasAssessment]]:
    """Every assessment per (trial id, endpoint), newest first (by id, as
    ``current_assessments``: the first row of each list is its current assessment).
    ``trial_ids`` limits it to those trials. One query, for ``assessor_agreement`` of every
    endpoint of a page or of the API at once."""
    query = select(BiasAssessment).order_by(col(BiasAssessment.id).desc())
    if trial_ids is not None:
        ids = list(trial_ids)
        if not ids:
            return {}
        query = query.where(col(BiasAssessment.trial_id).in_(ids))
    grouped: dict[tuple[int, str], list[BiasAssessment]] = {}
    for row in session.exec(query):
        grouped.setdefault((row.trial_id, row.endpoint), []).append(row)
    return grouped


def assessment_json(row: BiasAssessment) -> dict[str, Any]:
    """An assessment as the JSON API gives it: ``overall``, ``overall_note``, ``domains`` (in
    ``DOMAINS`` order), ``assessed_by`` (a user id, as estimates' ``created_by``) and
    ``created_at`` (ISO)."""
    stored = row.domains or {}
    return {"overall": row.overall, "overall_note": row.overall_note,
            "domains": {key: {"judgment": stored.get(key, {}).get("judgment"),
                              "support": stored.get(key, {}).get("support", "")}
                        for key in DOMAINS},
            "assessed_by": row.assessed_by, "created_at": row.created_at.isoformat()}


# ----------------------------------------------------------------------------- agreement
#: The key a disagreement on the overall judgment has in place of a domain's.
OVERALL = "overall"
OVERALL_LABEL = "Overall judgment"


@dataclass(frozen=True)
class Disagreement:
    """A domain (``domain`` a key of ``DOMAINS``, or ``OVERALL``) on which the assessors'
    latest assessments differ. ``judgments`` maps every assessor's user id to their judgment
    (``None`` when a stored row lacks it), in the order of ``AssessorAgreement.latest``."""

    domain: str
    label: str
    judgments: dict[int, str | None]

    def grouped(self) -> list[tuple[str | None, list[int]]]:
        """Each judgment given with the assessors who gave it, from least to most risk: what
        "low (ann) vs high (bob, cy)" is written from."""
        by_judgment: dict[str | None, list[int]] = {}
        for user_id, judgment in self.judgments.items():
            by_judgment.setdefault(judgment, []).append(user_id)
        return sorted(by_judgment.items(), key=lambda item: _rank_or_last(item[0]))


@dataclass(frozen=True)
class AssessorAgreement:
    """How the people who assessed one trial's endpoint agree (``assessor_agreement``).

    ``latest`` maps each assessor's user id to their latest assessment, ordered by that
    row's id, so the assessor of the current assessment comes last; ``disagreements`` lists
    the domains, then the overall judgment, on which those latest assessments differ.
    """

    latest: dict[int, BiasAssessment]
    disagreements: tuple[Disagreement, ...]

    @property
    def assessors(self) -> int:
        """How many different people assessed."""
        return len(self.latest)

    @property
    def agree(self) -> bool | None:
        """Whether the assessors' latest assessments agree on every domain and overall;
        None when fewer than two people assessed (there is nobody to agree with)."""
        if self.assessors < 2:
            return None
        return not self.disagreements


def assessor_agreement(rows: Iterable[BiasAssessment]) -> AssessorAgreement:
    """Compare the latest assessment of each person who assessed one trial's endpoint.

    ``rows`` are that endpoint's stored assessments in any order (e.g. ``history_by_endpoint``
    's list). Someone who assessed twice counts once, with their later assessment: re-assessing
    is how a person changes their mind, so their earlier rows no longer say what they think.
    Only judgments are compared — support texts are the assessors' own words and differ
    anyway. Raises ValueError for rows of different trials or endpoints (comparing PFS with
    OS judgments would report disagreements that are not), or unsaved rows (the order of
    rows is their id, as for the current assessment).
    """
    latest: dict[int, BiasAssessment] = {}
    seen: set[tuple[int, str]] = set()
    for row in rows:
        if row.id is None:
            raise ValueError("assessor_agreement compares stored assessments: save them first")
        seen.add((row.trial_id, row.endpoint))
        mine = latest.get(row.assessed_by)
        if mine is None or _row_id(mine) < row.id:
            latest[row.assessed_by] = row
    if len(seen) > 1:
        raise ValueError("assessor_agreement compares the assessments of one trial's endpoint, "
                         f"not of {len(seen)}: group them first (history_by_endpoint)")
    ordered = dict(sorted(latest.items(), key=lambda item: _row_id(item[1])))
    compared: list[tuple[str, str, dict[int, str | None]]] = [
        (key, label, {user_id: _judgment(row, key) for user_id, row in ordered.items()})
        for key, label in DOMAINS.items()]
    compared.append((OVERALL, OVERALL_LABEL,
                     {user_id: row.overall for user_id, row in ordered.items()}))
    return AssessorAgreement(latest=ordered, disagreements=tuple(
        Disagreement(domain=key, label=label, judgments=judgments)
        for key, label, judgments in compared if len(set(judgments.values())) > 1))


def _judgment(row: BiasAssessment, key: str) -> str | None:
    judgment = (row.domains or {}).get(key, {}).get("judgment")
    return judgment if isinstance(judgment, str) else None


def _row_id(row: BiasAssessment) -> int:
    assert row.id is not None  # assessor_agreement refuses unsaved rows
    return row.id


def _rank_or_last(judgment: str | None) -> int:
    return _RANK.get(judgment, len(_RANK)) if judgment is not None else len(_RANK)
