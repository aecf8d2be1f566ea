"""Trials, their reports, and the extraction form for estimates."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, func, select

from screening.web.csrf import csrf_protect
from screening.web.deps import Curator, DbSession, Viewer, flash, get_or_404
from screening.web.extraction import (
    ENDPOINTS,
    METHODS,
    ORIENTATIONS,
    SETTINGS,
    FieldErrors,
    parse_estimate,
    save_estimate,
)
from screening.web.templating import render
from screening.web.trials import REPORT_KINDS, add_report, create_trial
from store.audit import audit
from store.models import Estimate, Trial, TrialReport

router = APIRouter(dependencies=[Depends(csrf_protect)])

CHOICES = {"endpoints": ENDPOINTS, "settings": SETTINGS, "orientations": ORIENTATIONS,
           "methods": METHODS, "report_kinds": REPORT_KINDS}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


def _trial(session: Session, trial_id: int) -> Trial:
    return get_or_404(session, Trial, trial_id, missing=f"trial {trial_id} does not exist")


@router.get("/trials")
def trials_page(request: Request, session: DbSession, user: Viewer) -> Response:
    trials = session.exec(select(Trial).order_by(col(Trial.drug), col(Trial.name))).all()
    n_est = dict(session.exec(select(Estimate.trial_id, func.count()).group_by(
        col(Estimate.trial_id))).all())
    n_rep = dict(session.exec(select(TrialReport.trial_id, func.count()).group_by(
        col(TrialReport.trial_id))).all())
    return render(request, "trials.html", {"trials": trials, "n_est": n_est, "n_rep": n_rep})


@router.get("/trials/new")
def new_trial_form(request: Request, user: Curator) -> Response:
    return render(request, "trial_new.html", {"values": {}, "errors": {}, **CHOICES})


@router.post("/trials/new")
async def new_trial(request: Request, session: DbSession, user: Curator) -> Response:
    data = await _form(request)
    try:
        trial = create_trial(session, data, user=user)
    except FieldErrors as exc:
        return render(request, "trial_new.html", {"values": data, "errors": exc.fields,
                                                  **CHOICES}, status_code=400)
    session.commit()
    flash(request, f"Trial {trial.name} created.", "ok")
    return RedirectResponse(f"/trials/{trial.id}", status_code=303)


def _trial_page(request: Request, session: Session, trial: Trial, *, status_code: int = 200,
                **extra: Any) -> Response:
    reports = session.exec(select(TrialReport).where(TrialReport.trial_id == trial.id)
                           .order_by(col(TrialReport.year), col(TrialReport.id))).all()
    estimates = session.exec(select(Estimate).where(Estimate.trial_id == trial.id).order_by(
        col(Estimate.endpoint), col(Estimate.data_cut), col(Estimate.id))).all()
    context = {"trial": trial, "reports": reports, "estimates": estimates,
               "values": {"setting": trial.setting}, "errors": {}, "report_values": {},
               "report_errors": {}, **CHOICES}
    context.update(extra)
    return render(request, "trial.html", context, status_code=status_code)


@router.get("/trials/{trial_id}")
def trial_page(request: Request, trial_id: int, session: DbSession, user: Viewer) -> Response:
    return _trial_page(request, session, _trial(session, trial_id))


@router.post("/trials/{trial_id}/reports")
async def trial_add_report(request: Request, trial_id: int, session: DbSession,
                           user: Curator) -> Response:
    trial = _trial(session, trial_id)
    data = await _form(request)
    try:
        add_report(session, trial, data, user=user)
    except FieldErrors as exc:
        return _trial_page(request, session, trial, status_code=400, report_values=data,
                           report_errors=exc.fields)
    session.commit()
    flash(request, "Report added.", "ok")
    return RedirectResponse(f"/trials/{trial.id}", status_code=303)


@router.post("/trials/{trial_id}/estimates")
async def trial_add_estimate(request: Request, trial_id: int, session: DbSession,
                             user: Curator) -> Response:
    trial = _trial(session, trial_id)
    data = await _form(request)
    reports = list(session.exec(select(TrialReport).where(TrialReport.trial_id == trial.id)))
    try:
        draft = parse_estimate(data, trial=trial, reports=reports)
    except FieldErrors as exc:
        return _trial_page(request, session, trial, status_code=400, values=data,
                           errors=exc.fields)
    estimate = save_estimate(session, trial=trial, draft=draft, user=user)
    session.commit()
    converted = (" (entered as control vs maintenance; stored inverted as maintenance vs "
                 "control)" if estimate.orientation_entered == "control_vs_maint" else "")
    flash(request, f"Estimate saved: {estimate.endpoint} HR {estimate.hr:.3g}{converted}.", "ok")
    for warning in draft.warnings:
        flash(request, f"Check: {warning}", "warn")
    return RedirectResponse(f"/trials/{trial.id}#estimate-{estimate.id}", status_code=303)


@router.post("/estimates/{estimate_id}/verify")
def verify_estimate(request: Request, estimate_id: int, session: DbSession,
                    user: Curator) -> Response:
    estimate = get_or_404(session, Estimate, estimate_id,
                          missing=f"estimate {estimate_id} does not exist")
    estimate.verified = not estimate.verified
    estimate.verified_by = user.id if estimate.verified else None
    session.add(estimate)
    audit(session, "estimate.verify" if estimate.verified else "estimate.unverify",
          actor=user.email, object_type="estimate", object_id=estimate.id)
    session.commit()
    state = "verified" if estimate.verified else "unverified"
    flash(request, f"Estimate {estimate.id} marked {state}.", "ok")
    return RedirectResponse(f"/trials/{estimate.trial_id}", status_code=303)
