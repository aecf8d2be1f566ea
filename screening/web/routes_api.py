"""The JSON API under /api/.

Reads accept a Bearer token or a logged-in browser session (any role); writes need a Bearer
token of a curator or admin. Errors are ``{"error": "<one line>", "code": "<code>"}`` (see
``errors.py``).
Withdrawing, correcting and verifying estimates, editing trials and assessing their risk of bias
call the same functions as the trial page (``corrections.py``, ``verification.py``,
``trials.py``, ``risk_of_bias.py`` and ``store.bias``), entering an assumed control risk the
same as the estimates page (``absolute_effects.py`` and ``store.baselines``), and votes,
resolutions and blinding the same as the record and conflicts pages (``decisions.py``,
``conflicts.py``), so the rules and messages are the same.

A judgement sent again while it still counts (a retry after a timeout) is answered 200 with
the stored row and ``already_recorded: true`` instead of being stored twice
(``store.repeats``), and so are an estimate sent again in every field (with the estimate
stored) and a correction sent again (with the estimate it made); a trial
edit may name the version it was made from (``If-Match``, or ``version`` in the body) and is
refused with 412 when it is stale (``preconditions.py``).
Bodies over 1 MiB never reach these handlers (``body_limit.py``); the OpenAPI schema is
``api_schema.py``'s.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, text
from sqlalchemy.orm import load_only
from sqlmodel import Session, col, select

from reports.absolute import absolute_or_reason
from screening.agreement import record_state
from screening.health import screening_health
from screening.record_search import parse_terms, records_matching
from screening.votes import hidden_from_queue, in_conflict, screener_counts, user_votes
from screening.web.absolute_effects import (
    baseline_json,
    load_baselines,
    save_baseline,
    snapshot_for,
)
from screening.web.absolute_effects import read_json as read_baseline_json
from screening.web.api_schema import (
    READ,
    READ_ONE,
    ApiError,
    api_errors,
    api_schema,
    closed_body,
    json_body,
)
from screening.web.audit_blinding import blinded
from screening.web.conflicts import (
    CONFLICTS_PAGE_SIZE,
    agreement,
    conflict_count,
    current_state,
    decision_json,
    list_conflicts,
    record_resolution,
    record_screening,
    visible_history,
)
from screening.web.corrections import (
    EstimateWithdrawnError,
    correct_estimate,
    correction_sent_again,
    ensure_current,
    extraction_sent_again,
    load_estimate,
    read_reason,
    with_kept_fields,
    withdraw_estimate,
    withdrawn_as_asked,
)
from screening.web.decisions import (
    DECISIONS,
    parse_pmid,
    parse_rank,
    parse_shown,
    record_decision,
)
from screening.web.deps import (
    ApiAdmin,
    ApiReader,
    ApiWriter,
    DbSession,
    RequestBody,
    api_caller,
    dual_screening,
    get_ctx,
    get_or_404,
    screeners_per_record,
    unknown_fields,
    verify_second_person,
)
from screening.web.derivation_inputs import INPUT_FIELDS, merge_derivation_inputs
from screening.web.errors import api_error_body
from screening.web.evidence import estimate_json, latest_pooled, pooled_json, trials_json
from screening.web.explanations import record_explanation
from screening.web.extraction import (
    KM_TEXT_FIELDS,
    EstimateDraft,
    RepeatedExtraction,
    parse_estimate,
    refuse_repeat,
    refuse_second_extraction,
    save_estimate,
)
from screening.web.fulltext import (
    LIST_LIMIT,
    SHOW_PATTERN,
    fulltext_agreement,
    record_fulltext,
    resolve,
    sought_reports,
)
from screening.web.preconditions import check_version, etag
from screening.web.risk_of_bias import read_json as read_bias_json
from screening.web.risk_of_bias import save_assessment
from screening.web.routes_audit import AuditForm, trial_named
from screening.web.trials import (
    TRIAL_FIELDS,
    edit_message,
    edit_trial,
    trial_data_from_json,
    trial_fingerprint,
    trial_json,
)
from screening.web.verification import parse_new_estimate, set_verified
from store.audit import audit_json, audit_rows, count_audit_rows, parse_audit_query
from store.baselines import BaselineError
from store.bias import assessment_json
from store.errors import AuthError, NotFoundError, ValidationError
from store.fulltext import (
    REASONS,
    VERDICTS,
    SoughtRule,
    assess,
    fulltext_counts,
    fulltext_state,
    outcomes,
)
from store.fulltext import assessment_json as fulltext_json
from store.ids import MAX_ID, parse_id
from store.models import BY_SCORE, Estimate, Record, Trial, TrialReport
from store.planner import likely
from store.record_lock import locked_trial
from store.screening_pool import in_screening_pool
from store.searches import (
    count_runs,
    last_completed_search,
    run_row,
    search_runs,
    search_summary,
)
from store.settings import is_dual_screening
from store.trial_match import matches_for_records

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api")

STATUSES = ("undecided", "decided", *DECISIONS, "deleted", "all", "conflict")


_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_TEXT = {"type": "string"}
_OPEN_TEXT = {"type": ["string", "null"]}


@router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request, user: ApiReader) -> dict[str, Any]:
    """The API's OpenAPI schema, for signed-in people and token holders only (it maps every
    route and parameter)."""
    return api_schema(request.app)


_HEALTH_ANSWERS: dict[int | str, dict[str, Any]] = {
    **api_errors(401),
    401: {"model": ApiError,
          "description": "a Bearer token was sent and is malformed, unknown or expired"},
    503: {"description": "the database is unreachable (body: status and database only)"}}


@router.get("/health", responses=_HEALTH_ANSWERS)
def health(request: Request) -> JSONResponse:
    """Liveness and database reachability, for load balancers: no authentication needed.
    ``{"status": "ok", "database": "ok"}`` with 200, or ``"error"``/``"unreachable"`` with 503.

    A signed-in caller (a Bearer token of any role, or a browser session) also gets
    ``version``, ``records`` (how many are stored) and ``last_poll`` (when the last search of
    new records completed, as ``mmlr status`` counts it): these say what software runs and
    how big the review is, which is nobody else's business. A token that is sent but not
    valid is answered 401."""
    body: dict[str, Any] = {"status": "ok", "database": "ok"}
    refused: AuthError | None = None
    try:
        with get_ctx(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        with get_ctx(request).sessions() as session:
            try:
                caller = api_caller(request, session)
            except AuthError as exc:  # answered below, once the database is known healthy
                refused, caller = exc, None
            if caller is not None:
                body["version"] = request.app.version
                body["records"] = int(session.exec(
                    select(func.count()).select_from(Record)).one())
                last = last_completed_search(session)
                body["last_poll"] = (last.finished_at.isoformat()
                                     if last is not None and last.finished_at is not None
                                     else None)
    except Exception as exc:  # any failure here means "not healthy"; never a 500
        # The reason goes to the log; the public answer says only what is wrong.
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503,
                            headers={"Cache-Control": "no-store"})
    if refused is not None:
        raise refused
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.head("/health", responses=_HEALTH_ANSWERS)
def health_head(request: Request) -> JSONResponse:
    """GET's answer (status and headers) without the body, for the health checkers that ask
    with HEAD: a 405 would read as "down". The server leaves the body out of any answer to
    HEAD, so ``Content-Length`` stays the length GET's body would have, as HTTP asks."""
    return health(request)


#: The columns of a record that ``records`` answers with or matches trials on: only these are
#: read (a record's authors, MeSH terms and keywords are JSON to decode and are not shown;
#: reading any other attribute of these rows raises instead of querying once per record).
_RECORD_COLUMNS = ("pmid", "title", "abstract", "journal", "year", "volume", "issue", "pages",
                   "elocation", "doi", "status", "publication_types", "nct_ids",
                   "comments_corrections", "score", "score_model_version_id", "flagged",
                   "audit_sample", "decision", "deleted", "retracted", "identified_via")


def _page_of_records(session: Session, conditions: list[Any], *, offset: int,
                     limit: int) -> list[Record]:
    """The records meeting ``conditions`` from ``offset`` in the queue's order
    (``store.models.BY_SCORE``: highest score first, unscored last, the newest PMID first on
    a tie); only :data:`_RECORD_COLUMNS` loaded. PostgreSQL walks migration 0017's index for
    this order and SQLite its score index, so neither sorts every matching record."""
    return list(session.exec(
        select(Record).where(*conditions)
        .options(load_only(*(getattr(Record, name) for name in _RECORD_COLUMNS),
                           raiseload=True))
        .order_by(*BY_SCORE).offset(offset).limit(limit)))


def _record_json(r: Record) -> dict[str, Any]:
    return {"pmid": r.pmid, "title": r.title, "journal": r.journal, "year": r.year,
            # as PubMed prints them ("3003-15"); null when it has none (online first) or
            # until a record stored before migration 0013 is fetched again
            "volume": r.volume, "issue": r.issue, "pages": r.pages, "elocation": r.elocation,
            "doi": r.doi, "pubmed_status": r.status, "publication_types": r.publication_types,
            "nct_ids": r.nct_ids, "score": r.score, "model_version_id": r.score_model_version_id,
            "flagged": r.flagged, "audit_sample": r.audit_sample, "decision": r.decision,
            "deleted": r.deleted, "retracted": r.retracted,
            # how the review first identified it: "search", "pmid" (added by PMID: PRISMA's
            # other methods) or "watched" (a trial report's PMID re-fetched)
            "identified_via": r.identified_via}


def _parse_bool(name: str, value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValidationError(f"{name}={value!r} is not a boolean", hint="use true or false")


@router.get("/records", responses=READ, response_model=dict[str, Any])
def records(request: Request, session: DbSession, user: ApiReader,
            status: Annotated[str, Query(max_length=20)] = "all",
            flagged: Annotated[str | None, Query(max_length=10)] = None,
            q: str | None = None,  # parse_terms says what is too long, in the API's words
            limit: Annotated[int, Query(ge=1, le=1000)] = 100,
            offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> JSONResponse:
    """Records by screening status, highest score first. ``undecided`` is the records waiting
    for a screener: the previous version's reports are not screened again, so ``all`` (or
    the decision recorded on one earlier) lists them. Under dual screening ``undecided`` is
    the caller's queue (records they have not voted on, conflicts left out), ``conflict``
    the records whose screeners disagree (not the previous version's reports), and each
    record says how many people voted and the caller's own vote — never anyone else's. Every
    record carries its full-text state (``fulltext``: null unless a report sought for
    retrieval — included or maybe, not one of the previous version's reports — else its
    settled verdict or ``awaiting``, ``awaiting_second`` or ``conflict``) and, for an
    excluded report, its reason code (``fulltext_reason``). ``q`` keeps the records matching
    every term of a search, as on ``/search`` (``screening.record_search``)."""
    if status not in STATUSES:
        raise ValidationError(f"status={status!r} is not valid",
                              hint=f"use one of {', '.join(STATUSES)}")
    dual = dual_screening(request)
    want_flag = _parse_bool("flagged", flagged)
    conditions: list[Any] = []
    if status == "deleted":
        conditions.append(col(Record.deleted).is_(True))
    elif status != "all":
        # Nearly every record is live, and most wait for a decision: marked so, SQLite
        # walks the score index for the page instead of sorting every matching row.
        conditions.append(likely(col(Record.deleted).is_(False)))
        if status == "undecided":
            # Waiting for a screener: the previous version's reports wait for nobody (still
            # listed with status=all, and by their other statuses).
            conditions.extend([likely(col(Record.decision).is_(None)), in_screening_pool()])
            if dual and user.id is not None:
                conditions.append(~hidden_from_queue(user.id))
        elif status == "conflict":
            # A conflict on a previous version's report waits for nobody (its decision
            # counts nowhere), as on /conflicts.
            conditions.extend([in_conflict(), in_screening_pool()])
        elif status == "decided":
            conditions.append(col(Record.decision).is_not(None))
        else:
            conditions.append(Record.decision == status)
    if want_flag is not None:
        conditions.append(col(Record.flagged).is_(want_flag))
    if q is not None:
        terms = parse_terms(q)
        if not terms:
            raise ValidationError("q is empty", hint="give words, a PMID, a DOI or a "
                                  "registration number, or leave q out")
        conditions.append(records_matching(terms))
    total = session.exec(select(func.count()).select_from(Record).where(*conditions)).one()
    rows = _page_of_records(session, conditions, offset=offset, limit=limit)
    body = [_record_json(r) for r in rows]
    rule = SoughtRule.for_session(session)
    sought = {r.pmid for r in rows if rule.is_sought(r)}
    verdicts = outcomes(session, sought)
    for item, r in zip(body, rows, strict=True):
        item["fulltext"], item["fulltext_reason"] = fulltext_state(
            r.pmid in sought, verdicts.get(r.pmid))
    matches = matches_for_records(session, rows, memo=request.app.state.trial_matches)
    for item, r in zip(body, rows, strict=True):
        item["trial_matches"] = [m.as_dict() for m in matches.get(r.pmid, [])]
    if dual:
        pmids = [r.pmid for r in rows]
        screeners = screener_counts(session, pmids)
        mine = user_votes(session, user.id, pmids) if user.id is not None else {}
        for item, r in zip(body, rows, strict=True):
            item["screening"] = record_state(r.decision, screeners[r.pmid])
            item["screeners"] = screeners[r.pmid]
            item["your_vote"] = mine.get(r.pmid)
    # Rendered here: FastAPI would first validate the whole answer against the declared
    # dict[str, Any] (about 2 ms for 100 records) to produce the same JSON.
    return JSONResponse({"total": int(total), "limit": limit, "offset": offset,
                         "records": body})


@router.get("/records/{pmid}/decisions", responses=READ_ONE)
def record_decisions(request: Request, pmid: int, session: DbSession,
                     user: ApiReader) -> dict[str, Any]:
    """The record's votes and resolutions, newest first, as the record page shows them: under
    dual screening, hidden from a caller who has not voted while the record awaits votes."""
    record = get_or_404(session, Record, pmid,
                        missing=f"record PMID {pmid} is not in the database")
    screening = record_screening(session, record, user,
                                 screeners_per_record=screeners_per_record(request))
    history = visible_history(session, pmid, screening)
    return {"pmid": pmid, "decision": record.decision, **screening.to_json(),
            "hidden_message": screening.hidden_message if screening.hidden_votes else None,
            "decisions": [decision_json(d, e) for d, e in history]}


@router.get("/conflicts", responses=READ)
def conflicts(request: Request, session: DbSession, user: ApiReader,
              limit: Annotated[int, Query(ge=1, le=1000)] = CONFLICTS_PAGE_SIZE,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    """Records whose screeners disagree, highest score first, ``limit`` (200 unless given, at
    most 1000) from ``offset``, as ``/api/records`` pages; each with every screener's latest
    vote. ``total`` counts them all; ``agreement`` is over every blind vote pair."""
    return {"screeners_per_record": screeners_per_record(request),
            "total": conflict_count(session), "limit": limit, "offset": offset,
            "conflicts": [c.to_json() for c in list_conflicts(session, user, limit=limit,
                                                                offset=offset)],
            "agreement": agreement(session).to_json()}


@router.get("/records/{pmid}/explanation", responses=READ_ONE)
def record_explanation_json(request: Request, pmid: int, session: DbSession, user: ApiReader,
                            k: Annotated[int, Query(ge=1, le=50)] = 8) -> dict[str, Any]:
    """Why the record scores what it does (the record page's "Why this score")."""
    record = get_or_404(session, Record, pmid,
                        missing=f"record PMID {pmid} is not in the database")
    explanation = record_explanation(session, record, request.app.state.model_cache, k=k)
    # "score" is the explanation's (recomputed); "stored_score" what the queue shows.
    return {"pmid": pmid, "stored_score": record.score, **explanation.to_json()}


@router.get("/screening/health", responses=READ)
def screening_health_json(request: Request, session: DbSession,
                          user: ApiReader) -> dict[str, Any]:
    """The queue's health banner as data: counts, recall estimate, both stopping tests
    (prioritised order and random audit) with p-values, method and assumptions."""
    return screening_health(session, dual=dual_screening(request),
                            target_recall=request.app.state.settings.stopping_recall)


@router.get("/estimates", responses=READ)
def estimates(session: DbSession, user: ApiReader) -> dict[str, Any]:
    baselines = load_baselines(session)
    return {"analyses": [pooled_json(r, baselines=baselines) for r in latest_pooled(session)]}


@router.get("/trials", responses=READ)
def trials(session: DbSession, user: ApiReader) -> dict[str, Any]:
    """Every trial with its reports, estimates, current risk of bias and ``version`` (what
    ``If-Match`` of an edit names)."""
    return {"trials": trials_json(session)}


@router.get("/trials/{trial_id}", responses={
    200: {"description": "the trial, as in GET /api/trials; its version is also the ETag",
          "headers": {"ETag": {"schema": {"type": "string"}}}}, **READ_ONE})
def trial(trial_id: int, session: DbSession, user: ApiReader) -> JSONResponse:
    """One trial as ``GET /api/trials`` gives it, with its version as the ``ETag`` header
    (send it back as ``If-Match`` with an edit)."""
    found = trials_json(session, trial_id)
    if not found:
        raise NotFoundError(f"trial {trial_id} does not exist")
    return JSONResponse(content=found[0], headers={"ETag": etag(found[0]["version"])})


@router.get("/searches", responses=READ)
def searches(request: Request, session: DbSession, user: ApiReader,
             kind: Annotated[str, Query(pattern="^(searches|all)$")] = "searches",
             limit: Annotated[int, Query(ge=1, le=1000)] = 100,
             offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    """The search log (``/searches``): the summary a methods section reports, and the runs,
    newest first (``kind=all`` adds the re-fetches of known records)."""
    only = kind == "searches"
    summary = search_summary(session, request.app.state.settings.query)
    return {
        "summary": {
            "query": summary.query,
            "first_search": summary.first_search.isoformat() if summary.first_search else None,
            "last_search": summary.last_search.isoformat() if summary.last_search else None,
            "covered_from": summary.covered_from.isoformat() if summary.covered_from else None,
            "covered_to": summary.covered_to.isoformat() if summary.covered_to else None,
            "gaps": [{"from": a.isoformat(), "to": b.isoformat()} for a, b in summary.gaps],
            "runs": summary.runs, "failed": summary.failed,
            "queries": [{"query": q.query, "first_used": q.first_used.isoformat(),
                         "last_used": q.last_used.isoformat(), "runs": q.runs,
                         "current": q.current} for q in summary.queries]},
        "total": count_runs(session, searches_only=only), "limit": limit, "offset": offset,
        "runs": [run_row(r) for r in search_runs(session, limit=limit, offset=offset,
                                                 searches_only=only)],
    }


@router.get("/audit", responses=api_errors(400, 401, 403, 404))
def audit(session: DbSession, admin: ApiAdmin, values: AuditForm,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100,
          offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    """The audit trail (``/admin/audit``), newest first, for admins only (it holds every
    login attempt with its client address): the page's filters (``actor``, ``action``,
    ``object_type``, ``object_id``, ``trial``, ``since``, ``until``), ``total`` rows match."""
    q = parse_audit_query(**values)
    trial_named(session, q)  # 404 for a trial id no trial has
    return {"total": count_audit_rows(session, q), "limit": limit, "offset": offset,
            "rows": [audit_json(r) for r in blinded(
                session, audit_rows(session, q, limit=limit, offset=offset), admin)]}


@router.patch("/trials/{trial_id}", responses={
    200: {"description": "the trial as edited, `changed` and `message`; its new version is "
                         "also the ETag", "headers": {"ETag": {"schema": {"type": "string"}}}},
    **api_errors(400, 401, 403, 404, 412)}, openapi_extra={
    **json_body({
        "type": "object", "additionalProperties": False,
        "description": "any of the trial's fields; those left out keep their values (a trial "
                       "from GET /api/trials may be sent back: its `version` is then checked "
                       "like If-Match)",
        "properties": {**{name: _OPEN_TEXT for name in TRIAL_FIELDS},
                       "is_strategy": {"type": "boolean"},
                       "registry_ids": {"type": ["string", "array", "null"],
                                        "items": {"type": "string"}},
                       "version": _TEXT,
                       **{name: {} for name in ("id", "reports", "estimates", "risk_of_bias")}}}),
    "parameters": [{"name": "If-Match", "in": "header", "required": False,
                    "schema": {"type": "string"},
                    "description": "the trial's ETag (or version, quoted) as read: the edit is "
                                   "refused with 412 if the trial has changed since"}]})
def patch_trial(request: Request, trial_id: int, session: DbSession,
                user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Edit a trial: any of its fields (those left out keep their values), the same checks
    and messages as the trial page's form. Answers the trial, ``changed`` (old and new value
    of each changed field) and ``message`` (the page's flash). Optimistic concurrency: with
    ``If-Match`` (or a ``version`` in the body) naming another version than the trial's, 412
    and nothing saved (``screening.web.preconditions`` says why it is optional)."""
    body = _json_object(raw)
    # Locked before the version is compared: no other edit between the check and the write.
    trial = locked_trial(session, trial_id)
    check_version(f"trial {trial_id} ({trial.name})", trial_fingerprint(trial),
                  if_match=request.headers.get("if-match"), sent=body.get("version"))
    data = trial_data_from_json(trial, body)
    change = edit_trial(session, trial, data, user=user)
    message = edit_message(session, trial, change)
    session.commit()
    content = {**trial_json(trial), "changed": change.to_json(), "message": message}
    return JSONResponse(content=content, headers={"ETag": etag(content["version"])})


#: The 200 of a write whose repeat stores nothing and says so in ``message`` (an assessment
#: or a control risk the same as the current one): answered, but not in the schema, which
#: declared 201 only, so a client generated from it took the repeat for an error.
_SAME_AS_CURRENT: dict[int | str, dict[str, Any]] = {200: {
    "description": "the same as your current one (a repeated request): nothing new was stored; "
                   "`message` says so"}}


@router.post("/trials/{trial_id}/risk-of-bias", status_code=201,
             responses={**_SAME_AS_CURRENT, **api_errors(400, 401, 403, 404)},
             openapi_extra=json_body({
                 "type": "object", "required": ["endpoint", "domains"],
                 "description": "RoB 2 for one endpoint (docs/curation.md, Risk of bias)",
                 "properties": {"endpoint": _TEXT, "domains": {
                     "type": "object", "additionalProperties": {
                         "type": "object", "properties": {"judgment": _TEXT,
                                                          "support": _OPEN_TEXT}}},
                     "overall": _OPEN_TEXT, "overall_note": _OPEN_TEXT}}))
def post_risk_of_bias(request: Request, trial_id: int, session: DbSession,
                      user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Assess a trial's risk of bias (RoB 2) for one endpoint: ``{"endpoint", "domains":
    {key: {"judgment", "support"}}, "overall", "overall_note"}``, ``overall`` optional (the
    judgment the domains give). The same checks and messages as the trial page's form
    (``store.bias``); the new assessment becomes the endpoint's current one."""
    trial = get_or_404(session, Trial, trial_id, missing=f"trial {trial_id} does not exist")
    checked = read_bias_json(_json_object(raw))
    saved = save_assessment(session, trial=trial, assessment=checked, user=user)
    session.commit()
    row = saved.row
    return JSONResponse(status_code=201 if saved.created else 200, content={
        "id": row.id, "trial_id": row.trial_id, "endpoint": row.endpoint,
        **assessment_json(row), "suggested_overall": checked.suggested,
        "replaces": saved.previous.id if saved.previous is not None else None,
        "message": saved.message})


@router.post("/estimates/baseline", status_code=201,
             responses={**_SAME_AS_CURRENT, **api_errors(400, 401, 403, 404)},
             openapi_extra=json_body({
                 "type": "object", "required": ["analysis", "months", "event_free_percent",
                                                "source"],
                 "properties": {"analysis": _TEXT,
                                "months": {"type": ["number", "string"]},
                                "event_free_percent": {"type": ["number", "string"]},
                                "source": _TEXT}}))
def post_baseline(request: Request, session: DbSession,
                  user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Enter the assumed control risk of an analysis: ``{"analysis", "months",
    "event_free_percent", "source"}``, the same checks and messages as the form on
    /estimates (``store.baselines``). Answers the entry, the analysis' absolute effect
    recomputed with it, ``replaces``, ``message`` and ``warnings`` (what to check, as the
    form's "Check: …" lines). A refused entry answers 400 with
    ``fields`` (field → message, as next to the form's fields) beside ``error``."""
    body = _json_object(raw)
    rows = latest_pooled(session)
    try:
        checked = read_baseline_json(body)
    except BaselineError as exc:
        if isinstance(body.get("analysis"), str):
            snapshot_for(rows, body["analysis"])  # an unknown analysis is 404 before all
        return JSONResponse(status_code=400, content={**api_error_body(400, exc.one_line()),
                                                      "fields": exc.fields})
    row = snapshot_for(rows, checked.analysis_key)
    saved = save_baseline(session, entry=checked, user=user,
                          label=row.analysis_label or row.analysis_key)
    session.commit()
    view, _ = absolute_or_reason(row, saved.row)
    return JSONResponse(status_code=201 if saved.created else 200, content={
        "baseline": baseline_json(saved.row, {saved.row.entered_by: user.email}),
        "absolute_effect": view, "snapshot_id": row.id,
        "replaces": saved.previous.id if saved.previous is not None else None,
        "message": saved.message, "warnings": list(checked.warnings)})


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice: json.loads would keep the
    last one without a word (``{"pmid": 1, "pmid": 2}`` decides PMID 2), and which one the
    client meant cannot be known; refused rather than guessed, as an unknown field is."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ValidationError(f"the key {json.dumps(key)} is given twice in the request body",
                                  hint="send each field once")
        data[key] = value
    return data


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"null",
                          object_pairs_hook=_refuse_repeated_keys)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the request body is not valid JSON") from None
    except RecursionError:  # thousands of nested brackets: the parser gives up, not the app
        raise ValidationError("the request body is nested too deeply",
                              hint="send a flat JSON object") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    return data


def _only_fields(data: dict[str, Any], fields: tuple[str, ...], what: str) -> None:
    """Refuse keys a body of ``what`` does not have. Ignoring them would turn a typo into
    something else: ``{"verifed": false}`` would verify, ``{"reasn": …}`` vote without
    the reason, and the client would never know."""
    refused = unknown_fields(data, fields, (), what)
    if refused is not None:
        raise ValidationError(refused)


_DECISION_FIELDS = ("pmid", "decision", "reason", "rank_shown", "model_version_shown",
                    "score_shown")


def _repeatable(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a write that may be a repeat (``store.repeats``): 201 when it
    stored something, 200 when the same judgement by the same person was there already (a
    retry after a timeout); ``already_recorded`` says which, the body is the stored row."""
    return {200: {"description": "the same judgement by you was already recorded (a repeated "
                                 "request): nothing new was stored, `already_recorded` is "
                                 "true"}, **api_errors(*statuses)}


def _recorded(created: bool, content: dict[str, Any]) -> JSONResponse:
    return JSONResponse(status_code=201 if created else 200,
                        content={**content, "already_recorded": not created})


@router.post("/decisions", status_code=201,
             responses=_repeatable(400, 401, 403, 404, 409),
             openapi_extra=json_body(closed_body({
                 "pmid": _ID, "decision": {"enum": list(DECISIONS)},
                 "reason": _OPEN_TEXT, "rank_shown": {"type": ["integer", "null"], "minimum": 1},
                 "model_version_shown": {"type": ["integer", "null"], "minimum": 1},
                 "score_shown": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
             }, "pmid", "decision")))
def post_decision(request: Request, session: DbSession,
                  user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """A decision (a vote under dual screening): 201 when stored; 200 with the stored one when
    the same decision and reason by you already counts (a retry), nothing stored twice."""
    data = _json_object(raw)
    _only_fields(data, _DECISION_FIELDS, "a decision")
    if "pmid" not in data:
        raise ValidationError("pmid is required")
    pmid = parse_pmid(data["pmid"])
    decision = data.get("decision")
    if not isinstance(decision, str):
        raise ValidationError("decision is required", hint=f"one of {', '.join(DECISIONS)}")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError("reason must be a string")
    screeners = screeners_per_record(request)
    shown = parse_shown(session, data.get("model_version_shown"), data.get("score_shown"))
    saved = record_decision(session, user=user, pmid=pmid, decision=decision, reason=reason,
                            rank_shown=parse_rank(data.get("rank_shown")), shown=shown,
                            screeners=screeners)
    session.commit()
    if saved.created:
        request.app.state.retrainer.maybe_start(session)
    row = saved.row
    content: dict[str, Any] = {
        "id": row.id, "pmid": row.pmid, "decision": row.decision, "reason": row.reason,
        "user": user.email, "model_version_id": row.model_version_id,
        "score_shown": row.score_shown, "rank_shown": row.rank_shown,
        "audit_sample": row.audit_sample, "created_at": row.created_at.isoformat()}
    if is_dual_screening(screeners):  # what the vote did: the record's state, never the other vote
        record = get_or_404(session, Record, pmid, missing=f"record PMID {pmid} is gone")
        content.update(kind=row.kind, record_decision=record.decision,
                       screening=current_state(session, record))
    return _recorded(saved.created, content)


@router.post("/records/{pmid}/resolution", status_code=201,
             responses=_repeatable(400, 401, 403, 404, 409), openapi_extra=json_body(closed_body({
                 "decision": {"enum": list(DECISIONS)}, "reason": _TEXT},
                 "decision", "reason")))
def post_resolution(request: Request, pmid: int, session: DbSession,
                    user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Resolve a conflict (or, for an admin, change a resolved record): ``{"decision",
    "reason"}``, the same rules as the conflicts page."""
    data = _json_object(raw)
    _only_fields(data, ("decision", "reason"), "a resolution")
    decision = data.get("decision")
    if not isinstance(decision, str):
        raise ValidationError("decision is required", hint=f"one of {', '.join(DECISIONS)}")
    _text_field(data, "reason")
    saved = record_resolution(session, user=user, pmid=pmid, decision=decision,
                              reason=data.get("reason"),
                              screeners_per_record=screeners_per_record(request))
    session.commit()
    if saved.created:
        request.app.state.retrainer.maybe_start(session)
    return _recorded(saved.created, {**decision_json(saved.row, user.email),
                                     "record_decision": saved.row.decision})


@router.get("/fulltext", responses=READ)
def fulltext(request: Request, session: DbSession, user: ApiReader,
             show: Annotated[str, Query(pattern=SHOW_PATTERN)] = "all",
             offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    """The full-text stage: its counts (as the PRISMA flow has them) and the reports sought
    for retrieval with their current verdicts, conflicts and unsettled ones first (500 a
    page from ``offset``; ``next_offset`` is the next page's, null on the last); with two
    assessors also their agreement (Cohen's kappa of the blind votes)."""
    rows = sought_reports(session, show, viewer=user, offset=offset, limit=LIST_LIMIT + 1)
    body: dict[str, Any] = {"counts": fulltext_counts(session).to_json(), "reasons": REASONS,
                            "reports": [r.to_json() for r in rows[:LIST_LIMIT]],
                            "offset": offset,
                            "next_offset": offset + LIST_LIMIT if len(rows) > LIST_LIMIT
                            else None}
    if dual_screening(request):
        a = fulltext_agreement(session)
        body["agreement"] = {"n": a.n, "raw_agreement": a.observed, "expected": a.expected,
                             "kappa": a.kappa}
    return body


@router.get("/records/{pmid}/fulltext", responses=READ_ONE)
def record_fulltext_json(request: Request, pmid: int, session: DbSession,
                         user: ApiReader) -> dict[str, Any]:
    """One record's full-text stage as the caller may see it: its state, the settled verdict,
    the caller's own vote and, unless blind, every judgement (newest first)."""
    record = get_or_404(session, Record, pmid, missing=f"record PMID {pmid} is not in the "
                                                       "database")
    ft = record_fulltext(session, record, user, dual=dual_screening(request))
    return {"pmid": pmid, **ft.to_json(),
            "history": [fulltext_json(row, email) for row, email, _ in ft.history]}


def _fulltext_fields(raw: bytes) -> dict[str, Any]:
    """``{"verdict", "reason", "note"}`` of a full-text request body, type-checked."""
    data = _json_object(raw)
    _only_fields(data, ("verdict", "reason", "note"), "a full-text judgement")
    if not isinstance(data.get("verdict"), str):
        raise ValidationError("verdict is required", hint=f"one of {', '.join(VERDICTS)}")
    _text_field(data, "reason")
    _text_field(data, "note")
    return {"verdict": data["verdict"], "reason": data.get("reason"), "note": data.get("note")}


@router.post("/records/{pmid}/fulltext", status_code=201,
             responses=_repeatable(400, 401, 403, 404, 409),
             openapi_extra=json_body(closed_body({"verdict": {"enum": list(VERDICTS)},
                                                  "reason": {"enum": [*REASONS, None]},
                                                  "note": _OPEN_TEXT}, "verdict")))
def post_fulltext(request: Request, pmid: int, session: DbSession,
                  user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """A full-text judgement on an included record: ``{"verdict", "reason", "note"}``, the
    same rules as the record page (``store.fulltext``): a verdict with one assessor, a vote
    with two, answered with the report's state (never the other vote). 201 when stored; 200
    with the stored one when the same judgement by you still counts (a retry)."""
    fields = _fulltext_fields(raw)
    saved = assess(session, user=user, pmid=pmid, screeners_per_record=screeners_per_record(
        request), **fields)
    session.commit()
    state = outcomes(session, [pmid])[pmid].state
    return _recorded(saved.created, {**fulltext_json(saved.row, user.email), "state": state})


@router.post("/records/{pmid}/fulltext/resolve", status_code=201,
             responses=_repeatable(400, 401, 403, 404, 409),
             openapi_extra=json_body(closed_body({"verdict": {"enum": list(VERDICTS)},
                                                  "reason": {"enum": [*REASONS, None]},
                                                  "note": _OPEN_TEXT}, "verdict", "note")))
def post_fulltext_resolution(request: Request, pmid: int, session: DbSession,
                             user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Resolve a full-text conflict (or, for an admin, change a settled report):
    ``{"verdict", "reason", "note"}`` with the note required, the record page's rules."""
    fields = _fulltext_fields(raw)
    saved = resolve(session, user=user, pmid=pmid, dual=dual_screening(request), **fields)
    session.commit()
    return _recorded(saved.created, {**fulltext_json(saved.row, user.email),
                                     "state": "resolved"})


def _whole_number(value: Any) -> int | None:
    """``value`` as an id (1 to MAX_ID: an integer or a string of digits), else None; never
    ``true`` (an int to Python: trial 1) nor 1.7 (``int()`` would quietly make it trial 1).
    A number beyond any id is the field's 400, as every number in a body (operations.md)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    return parse_id(value) if isinstance(value, str) else None


def _find_trial(session: Session, data: dict[str, Any]) -> Trial:
    if data.get("trial_id") is not None:
        trial_id = _whole_number(data["trial_id"])
        if trial_id is None:
            # as the client wrote it (true, not Python's True)
            raise ValidationError(f"trial_id {json.dumps(data['trial_id'])} is not a trial's id",
                                  hint="a whole number, as in GET /api/trials")
        return get_or_404(session, Trial, trial_id, missing=f"trial {trial_id} does not exist")
    if data.get("trial") is not None and not isinstance(data["trial"], str):
        # (str() would look up a trial named "True")
        raise ValidationError(f"trial must be a string (the trial's name), not "
                              f"{json.dumps(data['trial'])}", hint="or give trial_id")
    if isinstance(data.get("trial"), str):
        trial = session.exec(select(Trial).where(Trial.name == data["trial"])).first()
        if trial is None:
            raise NotFoundError(f"trial {data['trial']!r} does not exist")
        return trial
    raise ValidationError("trial_id (or trial, the trial's name) is required")


#: What an estimate's body may carry: the trial page's form fields (every derivation's
#: inputs among them), the trial, and — read only, for an estimate's JSON sent back — what
#: GET /api/trials and the answers of these routes add.
_ESTIMATE_FIELDS: frozenset[str] = frozenset((
    "trial_id", "trial", "report_id", "endpoint", "setting", "comparison", "data_cut",
    "data_cut_label", "n_maintenance", "n_control", "events", "verified", "notes", "citation",
    "method", "orientation", "hr", "ci_low", "ci_high", "derivation_inputs",
    *INPUT_FIELDS, *KM_TEXT_FIELDS))
_ESTIMATEREAD_ONLY: frozenset[str] = frozenset((
    "id", "log_hr", "se", "approximate", "orientation_entered", "withdrawn_at",
    "withdrawn_by", "withdrawn_reason", "supersedes_id", "created_by", "verified_by",
    "warnings", "entry_notes", "already_recorded"))


def _estimate_fields(data: dict[str, Any], *extra: str) -> None:
    """Refuse a key no estimate has (``data_cut_lable`` would otherwise save no label)."""
    unknown = sorted(str(k) for k in data
                     if k not in _ESTIMATE_FIELDS and k not in _ESTIMATEREAD_ONLY
                     and k not in extra)
    if unknown:
        raise ValidationError(
            f"unknown field {', '.join(map(repr, unknown))}: an estimate has the fields of "
            "the trial page's form",
            hint="see docs/curation.md, Extraction; an estimate from GET /api/trials may be "
                 "sent back as it is")


@router.post("/estimates", status_code=201, responses=_repeatable(400, 401, 403, 404),
             openapi_extra=json_body({
                 "type": "object",
                 "description": "trial_id (or trial, the trial's name) and the extraction "
                                "fields of the trial page's form (docs/curation.md, "
                                "Extraction). The same extraction sent again (a retry) "
                                "answers 200 with the estimate stored",
                 "properties": {"trial_id": _ID, "trial": _TEXT}}))
def post_estimate(request: Request, session: DbSession,
                  user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Enter an estimate: 201 with it, its ``warnings`` and ``already_recorded: false``. An
    extraction that is a current estimate again in every field (a retry after a lost answer)
    stores nothing and answers 200 with that estimate and ``already_recorded: true``; the same
    report, cut and numbers with anything else different is refused (400), naming the estimate
    to correct."""
    body = _json_object(raw)
    _estimate_fields(body)
    data, notices = merge_derivation_inputs(body)
    # The trial is locked before its reports are read (a report moved to another trial
    # meanwhile was still taken) and before the checks for a repeat (a retry sent while the
    # first request was saving passed them both, and the extraction was stored twice).
    trial = locked_trial(session, _find_trial(session, data).id or 0)
    reports = list(session.exec(select(TrialReport).where(TrialReport.trial_id == trial.id)))
    draft = parse_new_estimate(data, trial=trial, reports=reports,
                               second_person=verify_second_person(request))
    try:
        refuse_repeat(session, trial=trial, draft=draft)
    except RepeatedExtraction as exc:
        # The same extraction sent again (a retry after a lost answer) is answered with the
        # estimate stored, as a repeated decision is; a repeat of its numbers that differs in
        # anything else is refused, naming the estimate to correct.
        stored = extraction_sent_again(session, exc, draft)
        if stored is None:
            raise
        return _recorded(False, {**estimate_json(stored),
                                 "warnings": [*draft.warnings, *notices]})
    refuse_second_extraction(session, trial=trial, values=draft.values)
    estimate = save_estimate(session, trial=trial, draft=draft, user=user)
    session.commit()
    return _recorded(True, {**estimate_json(estimate), "warnings": [*draft.warnings, *notices]})


@router.post("/estimates/{estimate_id}/verify", responses=api_errors(400, 401, 403, 404, 409),
             openapi_extra=json_body(closed_body({"verified": {"type": "boolean",
                                                               "default": True}}),
                                     required=False))
def post_verify(request: Request, estimate_id: int, session: DbSession,
                user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Verify an estimate (``{"verified": true}``, also an empty body) or un-verify it
    (``false``). Under MMLR_VERIFY_SECOND_PERSON not by the person who entered it (403)."""
    estimate = load_estimate(session, estimate_id)
    data = _json_object(raw) if raw.strip() else {}
    _only_fields(data, ("verified",), "a verification")
    verified = data.get("verified", True)
    if not isinstance(verified, bool):
        raise ValidationError("verified must be true or false")
    set_verified(session, estimate, verified=verified, user=user,
                 second_person=verify_second_person(request))
    session.commit()
    return JSONResponse(content=estimate_json(estimate))


def _text_field(data: dict[str, Any], name: str) -> None:
    """Refuse a non-string ``name`` (read_reason would quietly turn 5 into "5")."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be a string")


@router.post("/estimates/{estimate_id}/withdraw", responses=api_errors(400, 401, 403, 404, 409),
             openapi_extra=json_body(closed_body({"reason": _TEXT}, "reason")))
def post_withdraw(request: Request, estimate_id: int, session: DbSession,
                  user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Withdraw an estimate with a reason: it stays on record and leaves every analysis.
    Answers the estimate and ``already_recorded: false``. Sent again (a retry after a lost
    answer) with the same reason or none, it answers 200 with the estimate as withdrawn and
    ``already_recorded: true``; with another reason, or for an estimate a correction
    withdrew, 409."""
    estimate = load_estimate(session, estimate_id)
    data = _json_object(raw)
    _only_fields(data, ("reason",), "a withdrawal")
    _text_field(data, "reason")
    if withdrawn_as_asked(session, estimate, data.get("reason")):
        return _withdrawn(estimate, already=True)
    ensure_current(estimate)
    reason = read_reason(data)
    try:
        withdraw_estimate(session, estimate, reason=reason, user=user)
    except EstimateWithdrawnError:
        # withdrawn while this request was on its way: by this request's first attempt?
        if withdrawn_as_asked(session, estimate, reason):
            return _withdrawn(estimate, already=True)
        raise
    session.commit()
    return _withdrawn(estimate, already=False)


def _withdrawn(estimate: Estimate, *, already: bool) -> JSONResponse:
    """200 with a withdrawn estimate, and whether it was so already (a repeat: nothing done)."""
    return JSONResponse(content={**estimate_json(estimate), "already_recorded": already})


def _same_trial(session: Session, data: dict[str, Any], trial: Trial) -> None:
    """A correction stays on the corrected estimate's trial. A client may send the old
    estimate's JSON back with new numbers (it carries ``trial_id``), so the same trial is
    accepted; another one is refused rather than ignored."""
    if data.get("trial_id") is None and data.get("trial") is None:
        return
    named = _find_trial(session, data)
    if named.id != trial.id:
        raise ValidationError(
            f"trial: a correction stays on the trial of the estimate it corrects "
            f"({trial.name}), not {named.name}",
            hint="leave out trial and trial_id, or withdraw this estimate and post a new one "
                 "to the other trial")


@router.post("/estimates/{estimate_id}/correct", status_code=201,
             responses=_repeatable(400, 401, 403, 404, 409), openapi_extra=json_body({
                 "type": "object",
                 "description": "the extraction fields; those left out keep the old "
                                "estimate's values (docs/curation.md, Extraction), and an "
                                "optional correction_note. The same correction sent again "
                                "(a retry) answers 200 with the estimate it made",
                 "properties": {"correction_note": _OPEN_TEXT}}))
def post_correction(request: Request, estimate_id: int, session: DbSession,
                    user: ApiWriter, raw: RequestBody) -> JSONResponse:
    """Save a corrected copy of an estimate (unverified, ``supersedes_id`` set) and withdraw
    the old one with the reason "corrected by estimate N[: correction_note]". The same
    correction sent again answers 200 with the estimate it made and ``already_recorded``."""
    old = load_estimate(session, estimate_id)
    # Locked before its reports are read: a report moved to another trial meanwhile was
    # still taken, and the correction named another trial's report.
    trial = locked_trial(session, old.trial_id)
    body = _json_object(raw)
    if old.withdrawn_at is not None:
        # The same correction sent again (a retry after a timeout) is answered with the
        # estimate it made, as the Correct form says it saved already: told "already
        # withdrawn … enter a new estimate instead", the client would enter it twice. Any
        # other body (a different number, one that does not read) is refused below (409).
        try:
            draft, notices, _ = _read_correction(session, old, trial, body)
        except (ValidationError, NotFoundError):
            pass
        else:
            again = correction_sent_again(session, old, trial=trial, draft=draft)
            if again is not None:
                return _recorded(False, {**estimate_json(again),
                                         "warnings": [*draft.warnings, *notices]})
    try:
        ensure_current(old)
        draft, notices, note = _read_correction(session, old, trial, body)
        new = correct_estimate(session, old, trial=trial, draft=draft, user=user, note=note)
    except EstimateWithdrawnError as exc:
        return _correction_lost(exc, body)
    session.commit()
    return _recorded(True, {**estimate_json(new), "warnings": [*draft.warnings, *notices]})


def _correction_lost(exc: EstimateWithdrawnError, body: dict[str, Any]) -> JSONResponse:
    """409 for a correction of an estimate someone withdrew or corrected first (before this
    one was sent, or while it was being saved): who did, what is stored now (``current``, the
    estimate that replaced it, or null) and what was sent (``not_saved``), to check against
    it and send again as a correction of ``current``."""
    text = exc.message if not exc.hint else f"{exc.message} ({exc.hint})"
    return JSONResponse(status_code=409, content={
        **api_error_body(409, " ".join(text.split())), "withdrawn_by": exc.by,
        "current": estimate_json(exc.current) if exc.current is not None else None,
        "not_saved": _as_sent(body)})


def _as_sent(value: Any) -> Any:
    """``value`` (a parsed request body) as JSON can answer it: a NaN or an infinity sent
    (Python's json reads them) is given back as its word, not as a 500 on the way out."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_sent(v) for v in value]
    return value


def _read_correction(session: Session, old: Estimate, trial: Trial,
                     body: dict[str, Any]) -> tuple[EstimateDraft, list[str], str]:
    """The correction ``body`` asks for (its draft, the notices of its derivation inputs and
    its note); ValidationError (or NotFoundError, a trial named) when it does not read."""
    _estimate_fields(body, "correction_note")
    data, notices = merge_derivation_inputs(body)
    _same_trial(session, data, trial)
    _text_field(data, "correction_note")
    reports = list(session.exec(select(TrialReport).where(TrialReport.trial_id == trial.id)))
    note = read_reason(data, "correction_note", required=False)
    # Fields left out keep the old estimate's values, as in the Correct form: a correction
    # of the number alone must not lose the data cut (and with it the trial's latest cut).
    draft = parse_estimate(with_kept_fields(old, data), trial=trial, reports=reports)
    return draft, notices, note
