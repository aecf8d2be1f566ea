"""Trials, their reports, and the extraction form for estimates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, func, select

from reports.selection import latest_results, uses_of_estimates
from reports.words import hr_ci_text
from screening.web.corrections import (
    EstimateWithdrawnError,
    correct_estimate,
    correction_sent_again,
    ensure_current,
    form_values,
    load_estimate,
    read_reason,
    withdraw_estimate,
    withdrawn_as_asked,
)
from screening.web.csrf import csrf_protect, typed_fields
from screening.web.decisions import parse_pmid
from screening.web.deps import (
    Curator,
    DbSession,
    FormFields,
    Viewer,
    flash,
    get_or_404,
    verify_second_person,
)
from screening.web.derivation_inputs import describe
from screening.web.extraction import (
    ENDPOINTS,
    METHODS,
    ORIENTATIONS,
    SETTING_WORDS,
    FieldErrors,
    parse_estimate,
    refuse_repeat,
    refuse_second_extraction,
    save_estimate,
)
from screening.web.risk_of_bias import form_values as bias_form_values
from screening.web.risk_of_bias import page_context as bias_context
from screening.web.risk_of_bias import read_form as read_bias_form
from screening.web.risk_of_bias import save_assessment
from screening.web.templating import render
from screening.web.trials import (
    CONFIRM_OTHER_TRIAL,
    REPORT_KINDS,
    add_report,
    also_reported_words,
    correct_report,
    create_trial,
    edit_message,
    edit_trial,
    new_trial_values,
    primary_report_of,
    record_citation,
    report_change_words,
    report_screening_note,
    retracted_pmids,
    retraction_warning,
    trial_fingerprint,
    trial_form_values,
    unlink_report,
)
from screening.web.verification import may_verify, parse_new_estimate, set_verified
from store.bias import ENDPOINTS as BIAS_ENDPOINTS
from store.bias import AssessmentError, current_assessment
from store.errors import ConfigError, NotFoundError, ValidationError
from store.models import Estimate, Record, Trial, TrialReport, User
from store.record_lock import locked_trial

router = APIRouter(dependencies=[Depends(csrf_protect)])

# The settings' options read as words (post-ASCT), their values stay the stored codes.
CHOICES = {"endpoints": ENDPOINTS, "settings": SETTING_WORDS, "orientations": ORIENTATIONS,
           "methods": METHODS, "report_kinds": REPORT_KINDS}


def _trial(session: Session, trial_id: int) -> Trial:
    return get_or_404(session, Trial, trial_id, missing=f"trial {trial_id} does not exist")


@router.get("/trials")
def trials_page(request: Request, session: DbSession, user: Viewer) -> Response:
    trials = session.exec(select(Trial).order_by(col(Trial.drug), col(Trial.name))).all()
    # Withdrawn estimates stay on the trial page (the trail) but are not counted as evidence.
    n_est = dict(session.exec(select(Estimate.trial_id, func.count()).where(
        col(Estimate.withdrawn_at).is_(None)).group_by(col(Estimate.trial_id))).all())
    n_rep = dict(session.exec(select(TrialReport.trial_id, func.count()).group_by(
        col(TrialReport.trial_id))).all())
    return render(request, "trials.html", {"trials": trials, "n_est": n_est, "n_rep": n_rep})


@router.get("/trials/new")
def new_trial_form(request: Request, session: DbSession, user: Curator,
                   from_pmid: Annotated[int | None, Query(ge=1)] = None) -> Response:
    """The new-trial form; ``from_pmid`` fills it from a record (name, registrations), which
    becomes the trial's primary report when the trial is created."""
    values: dict[str, str] = {}
    record = None
    if from_pmid is not None:
        record = get_or_404(session, Record, from_pmid,
                            missing=f"record PMID {from_pmid} is not in the database")
        values = new_trial_values(record)
    return render(request, "trial_new.html", {"values": values, "errors": {},
                                              "record": record, **CHOICES})


@router.post("/trials/new")
def new_trial(request: Request, session: DbSession, user: Curator, data: FormFields) -> Response:
    record = None
    if data.get("from_pmid"):
        pmid = parse_pmid(data["from_pmid"])
        record = get_or_404(session, Record, pmid,
                            missing=f"record PMID {pmid} is not in the database")
    try:
        if record is not None and (other := primary_report_of(session, record.pmid)):
            raise FieldErrors({"from_pmid": (
                f"PMID {record.pmid} is already the primary report of {other}: add it to "
                f"{other}'s reports rather than entering the trial twice (if the publication "
                "really reports two trials, create this one without it and add the PMID as "
                "its report)")})
        trial = create_trial(session, data, user=user)
        if record is not None:
            add_report(session, trial, {"pmid": str(record.pmid), "kind": "primary",
                                        "citation": record_citation(record),
                                        "year": str(record.year or ""),
                                        CONFIRM_OTHER_TRIAL: data.get(CONFIRM_OTHER_TRIAL)},
                       user=user)
    except FieldErrors as exc:
        session.rollback()
        return render(request, "trial_new.html", {"values": data, "errors": exc.fields,
                                                  "record": record, **CHOICES},
                      status_code=400)
    session.commit()
    text = f"Trial {trial.name} created."
    if record is not None:
        text += f" PMID {record.pmid} is its primary report: complete its citation below."
        text += also_reported_words(session, session.exec(select(TrialReport).where(
            TrialReport.trial_id == trial.id, TrialReport.pmid == record.pmid)).one())
    flash(request, text, "ok")
    if record is not None and (warning := retraction_warning(session, record.pmid)):
        flash(request, warning, "warn")
    if record is not None and (note := report_screening_note(session, record.pmid)):
        flash(request, note, "info")
    return RedirectResponse(f"/trials/{trial.id}", status_code=303)


def _trial_page(request: Request, session: Session, trial: Trial, *, status_code: int = 200,
                **extra: Any) -> Response:
    reports = _reports(session, trial)
    # A report's PMID links to its record page only when the record is in the database (seed
    # reports often predate the searches); otherwise to PubMed, never to a "not found" page.
    pmids = {rep.pmid for rep in reports if rep.pmid is not None}
    stored_pmids = set(session.exec(select(Record.pmid).where(
        col(Record.pmid).in_(pmids))).all()) if pmids else set()
    estimates = session.exec(select(Estimate).where(Estimate.trial_id == trial.id).order_by(
        col(Estimate.endpoint), col(Estimate.data_cut), col(Estimate.id))).all()
    # who entered, verified and withdrew each estimate, by e-mail
    user_ids = {uid for e in estimates for uid in (e.withdrawn_by, e.verified_by, e.created_by)
                if uid is not None}
    emails = {u.id: u.email for u in session.exec(
        select(User).where(col(User.id).in_(user_ids)))} if user_ids else {}
    # the correcting estimate of each corrected one, for the link back and forth
    corrected_by = {e.supersedes_id: e.id for e in estimates if e.supersedes_id is not None}
    inputs_text = {e.id: describe(e.method, e.derivation_inputs) for e in estimates}
    # estimates this user may not verify (they entered them): the row says so, not a button
    user = getattr(request.state, "user", None)
    second_person = verify_second_person(request)
    not_yours_to_verify = {e.id for e in estimates if user is not None
                           and not may_verify(e, user, second_person=second_person)}
    context = {"trial": trial, "reports": reports, "stored_pmids": stored_pmids,
               "retracted": retracted_pmids(session, pmids),
               "estimates": estimates,
               "inputs_text": inputs_text, **_analysis_uses(request, session, estimates),
               "values": {"setting": trial.setting}, "errors": {}, "saved_already": None,
               "conflicts_with": None,
               "report_values": {},
               "report_errors": {}, "emails": emails, "corrected_by": corrected_by,
               "withdraw_errors": {}, "withdraw_values": {},
               "report_edit_errors": {}, "report_edit_values": {},
               "trial_choices": {str(i): n for i, n in session.exec(
                   select(Trial.id, Trial.name).order_by(col(Trial.name))).all()},
               "trial_values": trial_form_values(trial), "trial_errors": {},
               "trial_shown": trial_fingerprint(trial), "trial_stale": False,
               "not_yours_to_verify": not_yours_to_verify, **CHOICES,
               **bias_context(session, trial, estimates)}
    context.update(extra)
    return render(request, "trial.html", context, status_code=status_code)


def _analysis_uses(request: Request, session: Session,
                   estimates: Sequence[Estimate]) -> dict[str, Any]:
    """Per current estimate: the analyses it is pooled in, and those it is left out of grouped
    by reason (``reports.selection.uses_of_estimates``), for the Status column."""
    ids = {e.id for e in estimates if e.id is not None and e.withdrawn_at is None}
    try:
        uses = uses_of_estimates(session, ids, request.app.state.settings.analyses_file)
    except ConfigError as exc:  # a broken MMLR_ANALYSES_FILE must not hide the trial
        return {"uses": {}, "uses_error": exc.one_line()}
    view: dict[int, dict[str, Any]] = {}
    for estimate_id, items in uses.items():
        left_out: dict[str, list[str]] = {}
        for use in items:
            if use.reason is not None:
                left_out.setdefault(use.reason, []).append(use.label)
        view[estimate_id] = {"pooled": [u.label for u in items if u.reason is None],
                             "left_out": list(left_out.items()), "none": not items}
    return {"uses": view, "uses_error": None}


def _new_estimate_values(session: Session, trial: Trial, report_id: int | None,
                         ) -> dict[str, str]:
    """The extraction form's starting values: the trial's setting, and the report the numbers
    come from when it is known — the one asked for, or the trial's only report. Left on "none"
    an estimate has no report year, and the evidence-over-time view dates it by its data cut
    only; a trial of several reports waits for the curator's choice."""
    values = {"setting": trial.setting}
    reports = _reports(session, trial)
    chosen = [r for r in reports if r.id == report_id] if report_id is not None else (
        reports if len(reports) == 1 else [])
    if chosen:
        values["report_id"] = str(chosen[0].id)
    return values


@router.get("/trials/{trial_id}")
def trial_page(request: Request, trial_id: int, session: DbSession, user: Viewer,
               assess: Annotated[str | None, Query(max_length=10)] = None,
               report: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    """The trial page; ``?assess=PFS`` opens the risk-of-bias form filled with the endpoint's
    current assessment, to re-assess from it (an unknown endpoint opens it blank);
    ``?report=N`` chooses that report of the trial in the extraction form (linking a record
    sends the curator here to enter the numbers of the report just added)."""
    trial = _trial(session, trial_id)
    if assess is None:
        return _trial_page(request, session, trial, values=_new_estimate_values(
            session, trial, report))
    values: dict[str, str] = {}
    if assess in BIAS_ENDPOINTS:
        current = current_assessment(session, trial_id, assess)
        values = bias_form_values(current) if current is not None else {"endpoint": assess}
    return _trial_page(request, session, trial, rob_values=values, rob_open=True)


@router.post("/trials/{trial_id}/bias")
def trial_assess_bias(request: Request, trial_id: int, session: DbSession,
                      user: Curator, data: FormFields) -> Response:
    """Save a risk-of-bias (RoB 2) assessment of one endpoint: a new row, the endpoint's
    current one from now on; the earlier ones stay in the history (``store.bias``)."""
    trial = _trial(session, trial_id)
    try:
        checked = read_bias_form(data)
    except AssessmentError as exc:
        return _trial_page(request, session, trial, status_code=400, rob_values=data,
                           rob_errors=exc.fields, rob_open=True)
    saved = save_assessment(session, trial=trial, assessment=checked, user=user)
    session.commit()
    flash(request, saved.message, "ok")
    return RedirectResponse(f"/trials/{trial.id}#rob-{saved.row.endpoint}", status_code=303)


@router.post("/trials/{trial_id}/edit")
def trial_edit(request: Request, trial_id: int, session: DbSession,
               user: Curator, data: FormFields) -> Response:
    """Change a trial's fields (the same checks as a new trial); audited with old and new.
    The form carries the fingerprint of the trial it was filled from (``shown``); the trial
    is locked before it is compared, so no other edit slips in between the check and the
    write (the JSON API's If-Match uses the same fingerprint)."""
    trial = locked_trial(session, trial_id)
    shown = data.get("shown")
    if shown and shown != trial_fingerprint(trial):
        # Someone saved the trial after this form was filled: nothing is saved; the form comes
        # back with what was typed, the page above it with the trial as it is now.
        return _trial_page(request, session, trial, status_code=409, trial_values=data,
                           trial_stale=True)
    try:
        change = edit_trial(session, trial, data, user=user)
    except FieldErrors as exc:
        return _trial_page(request, session, trial, status_code=400, trial_values=data,
                           trial_errors=exc.fields)
    message = edit_message(session, trial, change)
    session.commit()
    flash(request, message, "ok" if change.new else "info")
    return RedirectResponse(f"/trials/{trial.id}", status_code=303)


@router.post("/trials/{trial_id}/reports")
def trial_add_report(request: Request, trial_id: int, session: DbSession,
                     user: Curator, data: FormFields) -> Response:
    trial = _trial(session, trial_id)
    try:
        report = add_report(session, trial, data, user=user)
    except FieldErrors as exc:
        return _trial_page(request, session, trial, status_code=400, report_values=data,
                           report_errors=exc.fields)
    session.commit()
    flash(request, "Report added." + also_reported_words(session, report), "ok")
    if warning := retraction_warning(session, report.pmid):
        flash(request, warning, "warn")
    if note := report_screening_note(session, report.pmid):
        flash(request, note, "info")
    return RedirectResponse(f"/trials/{trial.id}", status_code=303)


def _report(session: Session, report_id: int) -> tuple[TrialReport, Trial]:
    """The report and its trial, the trial write-locked until the transaction ends (two
    corrections of its reports are taken one after the other), the report read again after
    the lock (another correction may have moved or unlinked it meanwhile)."""
    missing = f"report {report_id} does not exist"
    report = get_or_404(session, TrialReport, report_id, missing=missing)
    trial = locked_trial(session, report.trial_id)
    fresh = session.get(TrialReport, report_id, populate_existing=True)
    if fresh is None:
        raise NotFoundError(missing)
    return fresh, trial


def _report_form_refused(request: Request, session: Session, trial: Trial, report_id: int,
                         exc: FieldErrors, data: dict[str, str]) -> Response:
    """The trial page again (400) with a report's Correct or Unlink form as it was sent and
    its errors; nothing of it was saved."""
    session.rollback()
    return _trial_page(request, session, _trial(session, trial.id or 0), status_code=400,
                       report_edit_errors={report_id: exc.fields},
                       report_edit_values={report_id: data})


@router.post("/reports/{report_id}/edit")
def report_edit(request: Request, report_id: int, session: DbSession,
                user: Curator, data: FormFields) -> Response:
    """Correct a report linked wrongly: move it to another trial, change its kind, citation
    or year (``screening.web.trials.correct_report``); audited as ``report.edit``."""
    report, trial = _report(session, report_id)
    try:
        change = correct_report(session, report, data, user=user)
    except FieldErrors as exc:
        return _report_form_refused(request, session, trial, report_id, exc, data)
    session.commit()
    if not change.new:
        flash(request, f"Report {report_id}: nothing changed.", "info")
        return RedirectResponse(f"/trials/{trial.id}#report-{report_id}", status_code=303)
    text = f"Report {report_id} corrected: {report_change_words(change)}."
    if change.detached:
        text += (f" Withdrawn estimates {', '.join(map(str, change.detached))} stay with "
                 f"{change.old['trial']} and no longer name it.")
    flash(request, text, "ok")
    return RedirectResponse(f"/trials/{report.trial_id}#report-{report_id}", status_code=303)


@router.post("/reports/{report_id}/unlink")
def report_unlink(request: Request, report_id: int, session: DbSession,
                  user: Curator, data: FormFields) -> Response:
    """Remove a report from its trial (``screening.web.trials.unlink_report``); audited as
    ``report.unlink``. The record, when stored, stays with its screening."""
    report, trial = _report(session, report_id)
    pmid = report.pmid
    try:
        detached = unlink_report(session, report, data, user=user)
    except FieldErrors as exc:
        return _report_form_refused(request, session, trial, report_id, exc, data)
    session.commit()
    what = f"PMID {pmid}" if pmid is not None else f"Report {report_id}"
    text = f"{what} unlinked from {trial.name}: it is no longer one of its reports."
    if detached:
        text += (f" Withdrawn estimates {', '.join(map(str, detached))} no longer name it.")
    flash(request, text, "ok")
    return RedirectResponse(f"/trials/{trial.id}", status_code=303)


def _hr_said(estimate: Estimate) -> str:
    """The saved HR and CI as the trial page's row shows them, "0.50 (0.35–0.70)": the
    flash said "HR 0.5" (and, through binary rounding, 1.02 for a printed 1.025)."""
    return hr_ci_text(estimate.hr, estimate.ci_low, estimate.ci_high)


@router.post("/trials/{trial_id}/estimates")
def trial_add_estimate(request: Request, trial_id: int, session: DbSession,
                       user: Curator, data: FormFields) -> Response:
    # Locked before its reports are read (a report moved to another trial meanwhile was
    # still taken) and before the checks for a repeat (a form sent twice at once was stored
    # twice).
    trial = locked_trial(session, trial_id)
    reports = _reports(session, trial)
    try:
        draft = parse_new_estimate(data, trial=trial, reports=reports,
                                   second_person=verify_second_person(request))
        refuse_repeat(session, trial=trial, draft=draft)
        refuse_second_extraction(session, trial=trial, values=draft.values)
    except FieldErrors as exc:
        # A repeat is not a typing error: the headline says it is saved already, and where
        # ("correct the marked fields" led a curator to change a number and store a copy);
        # other numbers for a cut that has one say which estimate to correct instead.
        return _trial_page(request, session, trial, status_code=400, values=data,
                           errors=exc.fields,
                           saved_already=getattr(exc, "estimate_id", None),
                           conflicts_with=getattr(exc, "conflicts_with", None))
    estimate = save_estimate(session, trial=trial, draft=draft, user=user)
    session.commit()
    converted = (" (entered as control vs maintenance; stored inverted as maintenance vs "
                 "control)" if estimate.orientation_entered == "control_vs_maint" else "")
    flash(request, f"Estimate saved: {estimate.endpoint} HR {_hr_said(estimate)}{converted}.",
          "ok")
    for warning in draft.warnings:
        flash(request, f"Check: {warning}", "warn")
    return RedirectResponse(f"/trials/{trial.id}#estimate-{estimate.id}", status_code=303)


@router.post("/estimates/{estimate_id}/verify")
def verify_estimate(request: Request, estimate_id: int, session: DbSession,
                    user: Curator, data: FormFields) -> Response:
    """Verify or un-verify. The button sends the state it asks for (``verified`` 1 or 0), so a
    second click on a stale page does not undo the first; without it the state toggles."""
    estimate = load_estimate(session, estimate_id)
    wanted = data.get("verified")
    if wanted not in (None, "1", "0"):
        raise ValidationError(f"verified={wanted[:20]!r} is not valid", hint="send 1 or 0")
    verified = not estimate.verified if wanted is None else wanted == "1"
    changed = set_verified(session, estimate, verified=verified, user=user,
                           second_person=verify_second_person(request))
    session.commit()
    state = "verified" if estimate.verified else "unverified"
    if changed:
        flash(request, f"Estimate {estimate.id} marked {state}."
              + _next_pool_words(request, session, estimate), "ok")
    else:
        flash(request, f"Estimate {estimate.id} is already {state}.", "info")
    return RedirectResponse(f"/trials/{estimate.trial_id}#estimate-{estimate.id}",
                            status_code=303)


def _next_pool_words(request: Request, session: Session, estimate: Estimate) -> str:
    """What verifying or un-verifying does, and when: the analyses change at the next pool
    run, not now, so a curator who opens /estimates straight away is not surprised to find
    the old numbers there."""
    if not estimate.verified:
        # Only an estimate the last pool run used has analyses to leave: an earlier data cut
        # already superseded by a later one (or verified and unverified between two runs)
        # changes nothing, and saying it "leaves the analyses" would send someone looking
        # for a change in the numbers that never comes.
        pooled = [r.analysis_label or r.analysis_key for r in latest_results(session)
                  if any(isinstance(row, dict) and row.get("estimate_id") == estimate.id
                         for row in r.inputs or [])]
        if not pooled:
            return " It was in no analysis of the last pool run: no pooled number changes."
        return (f" It leaves {'; '.join(pooled)} at the next pool run (mmlr pool, mmlr run, "
                "the scheduled cycle, or Pool now on the estimates page); the trial's latest "
                "other verified data cut, if it has one, takes its place.")
    try:
        uses = uses_of_estimates(session, {int(estimate.id or 0)},
                                 request.app.state.settings.analyses_file)
    except ConfigError:  # the Status column of the trial page says what is wrong
        return ""
    pooled = [u.label for u in uses.get(int(estimate.id or 0), []) if u.reason is None]
    if not pooled:
        return " It is not pooled in any analysis: its Status says why."
    return (f" The next pool run (mmlr pool, mmlr run, the scheduled cycle, or Pool now on the "
            f"estimates page) pools it in {'; '.join(pooled)}; until then the estimates page "
            f"shows the last run.")


def _reports(session: Session, trial: Trial) -> list[TrialReport]:
    return list(session.exec(select(TrialReport).where(TrialReport.trial_id == trial.id)
                             .order_by(col(TrialReport.year), col(TrialReport.id))))


@router.post("/estimates/{estimate_id}/withdraw")
def withdraw(request: Request, estimate_id: int, session: DbSession,
             user: Curator, data: FormFields) -> Response:
    estimate = load_estimate(session, estimate_id)
    if withdrawn_as_asked(session, estimate, data.get("reason")):
        return _withdrawn_already(request, estimate)
    ensure_current(estimate)
    try:
        reason = read_reason(data)
    except FieldErrors as exc:
        trial = _trial(session, estimate.trial_id)
        return _trial_page(request, session, trial, status_code=400,
                           withdraw_errors={estimate.id: exc.fields["reason"]},
                           withdraw_values={estimate.id: data.get("reason", "")})
    try:
        withdraw_estimate(session, estimate, reason=reason, user=user)
    except EstimateWithdrawnError:
        if withdrawn_as_asked(session, estimate, reason):  # by the first of a double click
            return _withdrawn_already(request, estimate)
        raise
    session.commit()
    flash(request, f"Estimate {estimate.id} withdrawn: it no longer enters any analysis.", "ok")
    return RedirectResponse(f"/trials/{estimate.trial_id}#estimate-{estimate.id}",
                            status_code=303)


def _withdrawn_already(request: Request, estimate: Estimate) -> Response:
    """The Withdraw form sent again (a double click, Back then Withdraw) for an estimate
    withdrawn so already: done, not a conflict (it was a 409 "already withdrawn")."""
    flash(request, f"Estimate {estimate.id} is withdrawn already ({estimate.withdrawn_reason}): "
                   "nothing changed.", "info")
    return RedirectResponse(f"/trials/{estimate.trial_id}#estimate-{estimate.id}",
                            status_code=303)


def _edit_page(request: Request, session: Session, estimate: Estimate, values: dict[str, str],
               errors: dict[str, str], *, status_code: int = 200) -> Response:
    trial = _trial(session, estimate.trial_id)
    reports = _reports(session, trial)
    return render(request, "estimate_edit.html",
                  {"trial": trial, "estimate": estimate, "reports": reports, "values": values,
                   "errors": errors, **CHOICES,
                   "retracted": retracted_pmids(session, (r.pmid for r in reports)),
                   "inputs_text": describe(estimate.method, estimate.derivation_inputs)},
                  status_code=status_code)


def _correction_sent_again(session: Session, old: Estimate, trial: Trial,
                           data: dict[str, str], reports: list[TrialReport]) -> Estimate | None:
    """The estimate that corrected ``old``, when the Correct form sent is that correction
    again; None for any other form (a different number, or one that does not read)."""
    try:
        draft = parse_estimate(data, trial=trial, reports=reports)
    except FieldErrors:
        return None
    return correction_sent_again(session, old, trial=trial, draft=draft)


def _correction_lost(request: Request, trial: Trial, exc: EstimateWithdrawnError,
                     data: dict[str, str]) -> Response:
    """409 for a correction of an estimate someone withdrew or corrected first (before the
    form was sent, or while it was being saved): who did and what is stored now, with what
    this curator typed (not saved) to check against it, and a link to correct the estimate
    that is current now. A bare "already withdrawn" lost what they had typed."""
    current = exc.current
    link = (f"/estimates/{current.id}/edit" if current is not None
            else f"/trials/{trial.id}#estimate-{exc.estimate.id}")
    text = (f"Correct estimate {current.id}, stored now" if current is not None
            else f"Back to {trial.name}")
    return render(request, "error.html", {
        "status": 409, "message": " ".join(exc.message.split()), "hint": exc.hint,
        "sent_form": typed_fields(data.items()), "next_href": link, "next_text": text,
        "login_next": "/"}, status_code=409)


@router.get("/estimates/{estimate_id}/edit")
def edit_estimate_form(request: Request, estimate_id: int, session: DbSession,
                       user: Curator) -> Response:
    estimate = load_estimate(session, estimate_id)
    ensure_current(estimate)
    return _edit_page(request, session, estimate, form_values(estimate), {})


@router.post("/estimates/{estimate_id}/edit")
def edit_estimate(request: Request, estimate_id: int, session: DbSession,
                  user: Curator, data: FormFields) -> Response:
    old = load_estimate(session, estimate_id)
    # Locked before its reports are read: a report moved to another trial meanwhile was
    # still taken, and the correction named another trial's report.
    trial = locked_trial(session, old.trial_id)
    reports = _reports(session, trial)
    if old.withdrawn_at is not None:
        again = _correction_sent_again(session, old, trial, data, reports)
        if again is not None:
            flash(request, f"This correction is saved already: estimate {old.id} was "
                           f"corrected by estimate {again.id} (HR {_hr_said(again)}). Nothing "
                           "was saved again.", "ok")
            return RedirectResponse(f"/trials/{trial.id}#estimate-{again.id}", status_code=303)
    try:
        ensure_current(old)
        note = read_reason(data, "correction_note", required=False)
        draft = parse_estimate(data, trial=trial, reports=reports)
        new = correct_estimate(session, old, trial=trial, draft=draft, user=user, note=note)
    except FieldErrors as exc:
        session.rollback()
        return _edit_page(request, session, old, data, exc.fields, status_code=400)
    except EstimateWithdrawnError as exc:
        return _correction_lost(request, trial, exc, data)
    session.commit()
    flash(request, f"Estimate {old.id} corrected by estimate {new.id} (HR {_hr_said(new)}); "
                   f"estimate {old.id} is withdrawn. The correction is unverified until "
                   "someone checks it.", "ok")
    for warning in draft.warnings:
        flash(request, f"Check: {warning}", "warn")
    return RedirectResponse(f"/trials/{trial.id}#estimate-{new.id}", status_code=303)
