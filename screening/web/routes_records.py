"""The review queue, the record page and screening decisions."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, func, select

from reports.words import noun
from screening.queue import PAGE_SIZE, next_record, queue
from screening.web.conflicts import (
    current_state,
    record_screening,
    settled_words,
    visible_history,
)
from screening.web.csrf import csrf_protect
from screening.web.decisions import DECISIONS, parse_rank, parse_shown, record_decision
from screening.web.deps import (
    THEN_PATTERN,
    Curator,
    DbSession,
    FormFields,
    Viewer,
    dual_screening,
    flash,
    get_or_404,
    screeners_per_record,
)
from screening.web.explanations import record_explanation
from screening.web.extraction import FieldErrors
from screening.web.fulltext import record_fulltext
from screening.web.queue_view import (
    queue_counts,
    queue_page_figures,
    screening_health,
    screening_progress,
)
from screening.web.templating import render, utc_text
from screening.web.trials import (
    REPORT_KINDS,
    also_reported_words,
    link_record,
    record_citation,
    report_screening_note,
    retraction_warning,
)
from store.citation import citation_line
from store.fulltext import VOTE, assess
from store.ids import parse_id
from store.models import Alert, Decision, Record, RecordRevision, Trial, TrialReport, User
from store.screening_pool import previous_report_trials
from store.settings import is_dual_screening
from store.trial_match import TrialIndex, registry_key

router = APIRouter(dependencies=[Depends(csrf_protect)])



def _health_items(health: dict[str, object],
                  ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Scalars of the health summary as label/value pairs; long texts (the stopping tests'
    verdicts, the method) separately, each with its label."""
    items: list[tuple[str, str]] = []
    texts: list[tuple[str, str]] = []
    for key, value in health.items():
        label = key.replace("_", " ")
        if isinstance(value, str) and len(value) > 60:
            texts.append((label, value))
        elif isinstance(value, bool):
            items.append((label, "yes" if value else "no"))
        elif isinstance(value, float):
            items.append((label, f"{value:.3g}"))
        elif isinstance(value, int | str) or value is None:
            items.append((label, "—" if value is None else str(value)))
    return items, texts


@router.get("/")
def queue_page(request: Request, session: DbSession, user: Viewer,
               show: Annotated[str, Query(pattern="^(undecided|all)$")] = "undecided",
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    # Dual screening: the queue is this person's (not what they voted on, not conflicts).
    dual = dual_screening(request)
    screener_id = user.id if dual else None
    rows = queue(session, limit=PAGE_SIZE + 1, offset=offset, include_decided=show == "all",
                 screener_id=screener_id, memo=request.app.state.trial_matches)
    figures = queue_page_figures(session, dual=dual, screener_id=screener_id)
    health = screening_health(session, dual=dual, figures=figures,
                              target_recall=request.app.state.settings.stopping_recall)
    items, texts = _health_items(health) if health else ([], [])
    retrainer = request.app.state.retrainer
    return render(request, "queue.html", {
        "rows": rows[:PAGE_SIZE], "has_next": len(rows) > PAGE_SIZE, "offset": offset,
        "limit": PAGE_SIZE, "show": show,
        "counts": queue_counts(session, screener_id=screener_id, figures=figures),
        "health": health, "health_items": items, "health_texts": texts,
        "progress": screening_progress(session, request.app.state.ctx.engine),
        "retrain_running": retrainer.running,
        "retrain_error": retrainer.last_error,
    })


@router.get("/records/{pmid}")
def record_page(request: Request, pmid: int, session: DbSession, user: Viewer,
                rank: Annotated[int | None, Query(ge=1)] = None,
                show: Annotated[str, Query(pattern="^(undecided|all)$")] = "undecided",
                ) -> Response:
    record = get_or_404(session, Record, pmid,
                        missing=f"record PMID {pmid} is not in the database")
    return record_page_response(request, session, record, user, rank=rank,
                                queue_back=queue_link(rank, show))


_PMID_IN_TEXT = re.compile(r"\bPMID (\d{1,10})\b")


def _pmid_parts(text: str, stored: set[int]) -> list[tuple[str, str | None]]:
    """``text`` cut into (words, link) parts, each "PMID n" linked to its record page when the
    record is stored and to PubMed otherwise; the template escapes every part."""
    parts: list[tuple[str, str | None]] = []
    start = 0
    for match in _PMID_IN_TEXT.finditer(text):
        parts.append((text[start:match.start()], None))
        n = int(match.group(1))
        parts.append((match.group(0), f"/records/{n}" if n in stored
                      else f"https://pubmed.ncbi.nlm.nih.gov/{n}/"))
        start = match.end()
    parts.append((text[start:], None))
    return [p for p in parts if p[0]]


def queue_link(rank: int | None, show: str) -> str:
    """The queue page a record was opened from: its list (undecided or all) and the page of
    its rank, so "← Queue" returns there rather than to the first page."""
    params = {"show": "all"} if show == "all" else {}
    if rank is not None and rank > PAGE_SIZE:
        params["offset"] = str((rank - 1) // PAGE_SIZE * PAGE_SIZE)
    return "/?" + urlencode(params) if params else "/"


def record_page_response(request: Request, session: Session, record: Record, user: User, *,
                         rank: int | None = None, status_code: int = 200,
                         queue_back: str = "/",
                         link_values: dict[str, str] | None = None,
                         link_errors: dict[str, str] | None = None,
                         fulltext_values: dict[str, str] | None = None,
                         fulltext_error: str | None = None,
                         resolve_values: dict[str, str] | None = None,
                         resolve_error: str | None = None) -> Response:
    """The record page; after a refused form, with its values and errors (``link_*``: the
    trial link form, ``fulltext_*``: the full-text form, ``resolve_*``: the resolution)."""
    pmid = record.pmid
    revisions = session.exec(select(RecordRevision).where(RecordRevision.pmid == pmid)
                             .order_by(col(RecordRevision.revision).desc())).all()
    alerts = session.exec(select(Alert).where(Alert.pmid == pmid)
                          .order_by(col(Alert.created_at).desc())).all()
    # An alert names the notice (retraction, erratum) by its PMID: the curator reads it on its
    # own record page when it is stored, else on PubMed (never a "not found" page).
    named = {int(n) for a in alerts for n in _PMID_IN_TEXT.findall(a.message or "")}
    stored = set(session.exec(select(Record.pmid).where(col(Record.pmid).in_(named))).all()
                 ) if named else set()
    alert_parts = [(a, _pmid_parts(a.message or "", stored)) for a in alerts]
    reports = session.exec(select(TrialReport, Trial).join(Trial)
                           .where(TrialReport.pmid == pmid)).all()
    # A report of the previous version is reachable (search, links) but not screened again.
    previous_of = previous_report_trials(session, pmid)
    explanation = record_explanation(session, record, request.app.state.model_cache)
    screening = record_screening(session, record, user,
                                 screeners_per_record=screeners_per_record(request))
    index = TrialIndex.load(session)
    matches = index.match_record(record)
    trials = session.exec(select(Trial.id, Trial.name).order_by(col(Trial.name))).all()
    # The form proposes the best match; adding the record's registration to it is ticked
    # when the record lists exactly one (a pooled analysis of several trials lists them
    # all) and that trial does not have it yet.
    # A weak match (a comment, a name in the abstract) is shown, not proposed.
    best = matches[0].trial_id if matches and matches[0].strong else None
    ids = [registry_key(r) for r in record.nct_ids or []]
    values = link_values if link_values is not None else {
        "trial_id": str(best or ""), "kind": "update" if best else "primary",
        "citation": record_citation(record), "year": str(record.year or ""),
        "add_registry": "1" if len(ids) == 1 and best not in index.by_registry.get(ids[0], ())
        else ""}
    # PubMed's own citation form, journal by its ISO abbreviation as PubMed prints it.
    citation = citation_line(record.journal_abbrev or record.journal, record.year,
                             record.volume, record.issue, record.pages, record.elocation)
    return render(request, "record.html", {
        "record": record, "rank": rank, "queue_back": queue_back, "citation": citation,
        "revisions": revisions, "alerts": alert_parts,
        "reports": reports, "previous_of": previous_of,
        "history": visible_history(session, pmid, screening),
        "latest_decision_id": _latest_decision_id(session, pmid),
        "explanation": explanation, "screening": screening,
        "decisions": DECISIONS, "trial_matches": matches, "proposed": best is not None,
        "trial_options": {str(i): n for i, n in trials}, "report_kinds": REPORT_KINDS,
        "link_values": values, "link_errors": link_errors or {},
        "fulltext": record_fulltext(session, record, user, dual=screening.dual),
        "fulltext_values": fulltext_values or {}, "fulltext_error": fulltext_error,
        "resolve_values": resolve_values or {}, "resolve_error": resolve_error,
    }, status_code=status_code)


@router.post("/records/{pmid}/reports")
def link_to_trial(request: Request, pmid: int, session: DbSession,
                  user: Curator, data: FormFields) -> Response:
    record = get_or_404(session, Record, pmid,
                        missing=f"record PMID {pmid} is not in the database")
    try:
        trial, report, added = link_record(session, record, data, user=user)
    except FieldErrors as exc:
        session.rollback()
        return record_page_response(request, session, record, user, status_code=400,
                                    link_values=data, link_errors=exc.fields)
    judged = None
    if data.get("fulltext_eligible") in ("1", "on", "true"):
        # In the same transaction: a refused judgement (settled meanwhile, say) links nothing.
        judged = assess(session, user=user, pmid=pmid, verdict="eligible",
                        screeners_per_record=screeners_per_record(request)).row
    session.commit()
    text = (f"PMID {pmid} added to {trial.name} as its {report.kind} report."
            + also_reported_words(session, report))
    if judged is not None:
        text += f" Full-text {'vote' if judged.kind == VOTE else 'verdict'} recorded: eligible."
    if added:
        text += f" {noun(len(added), 'Registration')} added to the trial: " \
                f"{', '.join(added)}."
    flash(request, text + " Enter its hazard ratios below.", "ok")
    if warning := retraction_warning(session, pmid):
        flash(request, warning, "warn")
    if note := report_screening_note(session, pmid):
        flash(request, note, "info")
    return RedirectResponse(f"/trials/{trial.id}?report={report.id}#add-estimate",
                            status_code=303)


@router.post("/records/{pmid}/decision")
def decide(request: Request, pmid: int, session: DbSession, user: Curator,
           decision: Annotated[str, Form(max_length=20)] = "",
           reason: Annotated[str, Form(max_length=4000)] = "",
           rank_shown: Annotated[str, Form(max_length=12)] = "",
           model_version_shown: Annotated[str, Form(max_length=12)] = "",
           score_shown: Annotated[str, Form(max_length=40)] = "",
           seen_decision: Annotated[str, Form(max_length=12)] = "",
           then: Annotated[str, Form(pattern=THEN_PATTERN)] = "",
           quick: Annotated[str, Form(max_length=20)] = "") -> Response:
    if quick:  # a one-click button ("Exclude, next"): its decision, then the next record
        decision, then = quick, "next"
    screeners = screeners_per_record(request)
    saved = record_decision(session, user=user, pmid=pmid, decision=decision, reason=reason,
                            rank_shown=parse_rank(rank_shown),
                            shown=parse_shown(session, model_version_shown, score_shown),
                            screeners=screeners)
    session.commit()
    row = saved.row
    if saved.created:
        request.app.state.retrainer.maybe_start(session)
    # After "Save and open the next" the saved record is no longer on screen: a way back (a
    # vote too, which may be changed until the record is resolved).
    back = (f"/records/{pmid}", "Open it again") if then == "next" else None
    if not is_dual_screening(screeners):
        # A form sent twice (a double click, Back and send again) is saved once: say so.
        said = "Decision saved" if saved.created else "Decision already saved"
        flash(request, f"{said}: {row.decision} (PMID {pmid}).", "ok", link=back)
        if saved.created and (warning := _decided_meanwhile(session, pmid, seen_decision,
                                                             row)):
            flash(request, warning, "warn")
    else:
        flash(request, vote_outcome(session, pmid, row.decision, repeated=not saved.created),
              "ok", link=back)
    if then == "next":
        return next_in_queue(request, session, user)
    return RedirectResponse(f"/records/{pmid}", status_code=303)


def _latest_decision_id(session: Session, pmid: int) -> int:
    """The newest decision on ``pmid`` (0: none): the decision form sends back the one it was
    shown with, so a decision someone else made meanwhile is not overridden unnoticed."""
    return int(session.exec(select(func.max(Decision.id)).where(Decision.pmid == pmid)).one()
               or 0)


def _decided_meanwhile(session: Session, pmid: int, seen: str, mine: Decision) -> str | None:
    """The warning when another person decided ``pmid`` after the form was shown (single
    screening: the latest decision counts, so theirs has just been replaced by ``mine``)."""
    # The form sends 0 when the record had no decision yet; nothing (an older page): no check.
    seen_id = 0 if seen.strip() == "0" else parse_id(seen)
    if seen_id is None:
        return None
    rows = session.exec(select(Decision, User.email).join(User, isouter=True).where(
        Decision.pmid == pmid, col(Decision.id) > seen_id, col(Decision.id) != mine.id,
        Decision.user_id != mine.user_id).order_by(col(Decision.id).desc())).all()
    if not rows:
        return None
    other, email = rows[0]
    return (f"{email or 'Someone'} decided {other.decision} on PMID {pmid} at "
            f"{utc_text(other.created_at)}, after you opened it: your decision "
            f"({mine.decision}) now counts. Both are in the decision history; if you did not "
            "mean to replace theirs, decide again.")


def next_in_queue(request: Request, session: Session, user: User) -> RedirectResponse:
    """The top of this person's queue as it stands after their decision (the model's current
    order, so the screening stays certainty-ordered; with two screeners the records they have
    not voted on yet) or, every ``AUDIT_EVERY``-th, a waiting audit record
    (``screening.queue.next_record``); the queue page with a word when nothing is left."""
    item = next_record(session, int(user.id or 0),
                       screener_id=user.id if dual_screening(request) else None)
    if item is None:
        flash(request, "Your queue is empty: no record awaits your decision.", "ok")
        return RedirectResponse("/", status_code=303)
    return RedirectResponse(f"/records/{item.pmid}?rank={item.rank}", status_code=303)


def vote_outcome(session: Session, pmid: int, vote: str, *, repeated: bool = False) -> str:
    """The flash after a dual-screening vote: what the vote did to the record (``repeated``:
    the same vote was already this person's latest, and nothing new was stored)."""
    record = get_or_404(session, Record, pmid, missing=f"record PMID {pmid} is not in the "
                                                       "database")
    state = current_state(session, record)
    text = f"Vote {'already ' if repeated else ''}saved: {vote} (PMID {pmid})."
    if state == "resolved":
        # A vote sent again after a resolution (Back, then submit) reaches here too: then
        # not the screeners' agreement settled the record (``settled_words`` says what did).
        return f"{text} {settled_words(session, record)}"
    if state == "conflict":
        return f"{text} The votes differ: the record is now on the conflicts page."
    return f"{text} It now awaits a second screener."
