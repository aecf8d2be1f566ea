"""Pooled estimates, their forest plots, their sequential-monitoring graphs and their funnel
plots, and the assumed control risk that turns each pooled HR into an absolute effect."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from reports.forest import render_forest
from reports.funnel_plot import render_funnel
from reports.monitoring_plot import render_monitoring
from reports.monitoring_view import STATUS_LABELS
from reports.selection import analyses_naming_no_drug, pending_changes
from reports.small_study import SIDE_WORDS
from reports.words import plural
from screening.web.absolute_effects import (
    FormState,
    absolute_blocks,
    load_baselines,
    read_form,
    save_baseline,
    snapshot_for,
)
from screening.web.background import BackgroundJob
from screening.web.csrf import csrf_protect
from screening.web.deps import Curator, DbSession, FormFields, Viewer, flash, get_or_404
from screening.web.evidence import (
    funnel_available,
    latest_pooled,
    pooled_json,
    sequential_monitoring,
    small_study_view,
)
from screening.web.templating import render, utc_text
from store.audit import audit
from store.baselines import BaselineError
from store.bias import JUDGMENT_LABELS
from store.errors import ConfigError, MmlrError, NotFoundError
from store.models import PooledResult

log = logging.getLogger(__name__)
# The baseline form posts here with the session cookie, so it needs the CSRF token (the GETs
# are not affected: csrf_protect checks unsafe methods only).
router = APIRouter(dependencies=[Depends(csrf_protect)])

# The SVG comes from matplotlib (text escaped), and is shown through <img>, where scripts never
# run; this policy also covers someone opening the URL directly.
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}


def _estimates_page(request: Request, session: Session, *, status_code: int = 200,
                    form: FormState | None = None) -> Response:
    """The page; ``form`` holds, per analysis key, what was typed and what was wrong with it,
    to show a refused entry again next to its fields."""
    rows = latest_pooled(session)
    baselines = load_baselines(session)
    blocks, emails = absolute_blocks(session, rows, baselines, form=form)
    labels = {r.analysis_key: r.analysis_label or r.analysis_key for r in rows}
    pending_error = None
    try:
        pending = pending_changes(session, request.app.state.settings.analyses_file)
    except ConfigError as exc:
        # The snapshots below are still worth showing; but without a word the notice and its
        # Pool now button just vanished, right after a verification promised them, while every
        # pool run fails on the same file.
        log.warning("estimates page: changes awaiting the next pool run unknown: %s", exc)
        pending, pending_error = [], exc.one_line()
    try:
        unknown_drugs = analyses_naming_no_drug(session, request.app.state.settings.analyses_file)
    except ConfigError:
        unknown_drugs = []  # the file's own mistake is shown above
    return render(request, "estimates.html",
                  {"results": [(r, pooled_json(r, baselines=baselines)) for r in rows],
                   "pending": pending, "pending_error": pending_error,
                   "unknown_drugs": unknown_drugs,
                   "status_labels": STATUS_LABELS, "rob_labels": JUDGMENT_LABELS,
                   "side_words": SIDE_WORDS, "absolute": blocks, "entered_by": emails,
                   "labels": labels, "pooler": request.app.state.pooler},
                  status_code=status_code)


@router.get("/estimates")
def estimates_page(request: Request, session: DbSession, user: Viewer) -> Response:
    return _estimates_page(request, session)


#: How long "Pool now" waits for the run before answering: the seed evidence pools in about a
#: second, so the page the curator lands on usually has the new numbers; a longer run goes on in
#: the background and the page says so.
POOL_WAIT_SECONDS = 15.0


@router.post("/estimates/pool")
def pool_now(request: Request, session: DbSession, user: Curator) -> Response:
    """Re-pool now rather than at the next scheduled cycle: the same run as `mmlr pool`
    (``reports.pool.pool_all``, under its database lock), in the background."""
    pooler = request.app.state.pooler
    if not pooler.start(by=user.email):
        flash(request, f"Pooling is already running (started by {pooler.started_by or 'the app'}"
              f" at {utc_text(pooler.started_at)}); reload this page to see when it is done.",
              "info")
        return RedirectResponse("/estimates", status_code=303)
    audit(session, "pool.requested", actor=user.email)
    session.commit()
    pooler.join(timeout=POOL_WAIT_SECONDS)
    flash(request, *pool_outcome(pooler))
    return RedirectResponse("/estimates", status_code=303)


def pool_outcome(pooler: BackgroundJob) -> tuple[str, str]:
    """(message, flash kind) of the run "Pool now" started, as far as it has got."""
    if pooler.running:
        return ("Pooling is still running in the background; reload this page in a moment to "
                "see the new numbers.", "info")
    if pooler.last_error:
        return f"Pooling failed: {pooler.last_error}", "error"
    if pooler.last_skipped:
        return (f"Not pooled here: {pooler.last_skipped}. That run stores the same numbers; "
                "reload this page when it is done.", "info")
    changed = len(getattr(pooler.last_summary, "changed", ()))
    if not changed:
        return "Pooled: no analysis changed.", "ok"
    return f"Pooled: {plural(changed, 'analysis', 'analyses')} with new numbers.", "ok"


@router.post("/estimates/baseline")
def estimates_baseline(request: Request, session: DbSession,
                       user: Curator, data: FormFields) -> Response:
    """Enter an analysis' assumed control risk (the form under its absolute effect): a new
    entry, current from now on; the earlier ones stay in its history (``store.baselines``)."""
    row = snapshot_for(latest_pooled(session), data.get("analysis"))
    try:
        checked = read_form(data)
    except BaselineError as exc:
        return _estimates_page(request, session, status_code=400,
                               form={row.analysis_key: (data, exc.fields)})
    saved = save_baseline(session, entry=checked, user=user,
                          label=row.analysis_label or row.analysis_key)
    session.commit()
    flash(request, saved.message, "ok")
    for warning in checked.warnings:
        flash(request, f"Check: {warning}", "warn")
    return RedirectResponse(f"/estimates#analysis-{row.id}", status_code=303)


@router.get("/estimates/{result_id}/forest.svg")
def forest_svg(result_id: int, session: DbSession, user: Viewer) -> Response:
    row = get_or_404(session, PooledResult, result_id,
                     missing=f"pooled result {result_id} does not exist")
    return _svg("forest plot", result_id, lambda: render_forest(row, fmt="svg"))


@router.get("/estimates/{result_id}/monitoring.svg")
def monitoring_svg(result_id: int, session: DbSession, user: Viewer) -> Response:
    """The sequential-monitoring graph of a snapshot (``reports.monitoring_plot``)."""
    row = get_or_404(session, PooledResult, result_id,
                     missing=f"pooled result {result_id} does not exist")
    view = sequential_monitoring(row)
    if view is None:
        raise NotFoundError(f"pooled result {result_id} has no sequential monitoring",
                            hint="snapshots from before monitoring existed have none; "
                            "run `mmlr pool` to compute it")
    return _svg("monitoring plot", result_id, lambda: render_monitoring(
        view, fmt="svg", title=row.analysis_label or row.analysis_key))


@router.get("/estimates/{result_id}/funnel.svg")
def funnel_svg(result_id: int, session: DbSession, user: Viewer) -> Response:
    """The contour-enhanced funnel plot of a snapshot (``reports.funnel_plot``)."""
    row = get_or_404(session, PooledResult, result_id,
                     missing=f"pooled result {result_id} does not exist")
    view = small_study_view(row)
    if view is None:
        raise NotFoundError(f"pooled result {result_id} has no small-study view",
                            hint="snapshots from before small-study effects existed have none; "
                            "run `mmlr pool` to compute it")
    if not funnel_available(view):
        raise NotFoundError(f"pooled result {result_id} has no funnel plot",
                            hint=str(view.get("reason") or "too few trials"))
    return _svg("funnel plot", result_id, lambda: render_funnel(
        row.inputs, view, estimate=row.estimate, fmt="svg",
        title=row.analysis_label or row.analysis_key))


def _svg(what: str, result_id: int, draw: Callable[[], bytes]) -> Response:
    """A plot of a snapshot as an SVG response. Our errors (a view the plot cannot draw) keep
    their message; anything else is logged with its traceback and becomes a 404 that says
    where the details are, never the exception's text."""
    try:
        svg = draw()
    except MmlrError:
        raise
    except Exception:
        log.exception("%s of pooled result %s failed", what, result_id)
        raise NotFoundError(f"the {what} of pooled result {result_id} could not be drawn",
                            hint="the details are in the server log") from None
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)
