"""Pooled estimates, their forest plots, their sequential-monitoring graphs and their funnel
plots."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from reports.forest import render_forest
from reports.funnel_plot import render_funnel
from reports.monitoring_plot import render_monitoring
from reports.monitoring_view import STATUS_LABELS
from reports.small_study import SIDE_WORDS
from screening.web.deps import DbSession, Viewer, get_or_404
from screening.web.evidence import (
    funnel_available,
    latest_pooled,
    pooled_json,
    sequential_monitoring,
    small_study_view,
)
from screening.web.templating import render
from store.bias import JUDGMENT_LABELS
from store.errors import MmlrError, NotFoundError
from store.models import PooledResult

log = logging.getLogger(__name__)
router = APIRouter()

# The SVG comes from matplotlib (text escaped), and is shown through <img>, where scripts never
# run; this policy also covers someone opening the URL directly.
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
               "Cache-Control": "private, max-age=300"}


@router.get("/estimates")
def estimates_page(request: Request, session: DbSession, user: Viewer) -> Response:
    rows = latest_pooled(session)
    return render(request, "estimates.html", {"results": [(r, pooled_json(r)) for r in rows],
                                              "status_labels": STATUS_LABELS,
                                              "rob_labels": JUDGMENT_LABELS,
                                              "side_words": SIDE_WORDS})


@router.get("/estimates/{result_id}/forest.svg")
def forest_svg(result_id: int, session: DbSession, user: Viewer) -> Response:
    row = get_or_404(session, PooledResult, result_id,
                     missing=f"pooled result {result_id} does not exist")
    try:
        svg = render_forest(row, fmt="svg")
    except MmlrError:
        raise
    except Exception:
        log.exception("forest plot of pooled result %s failed", result_id)
        raise NotFoundError(f"the forest plot of pooled result {result_id} could not be drawn",
                            hint="the details are in the server log") from None
    data = svg if isinstance(svg, bytes) else str(svg).encode("utf-8")
    return Response(data, media_type="image/svg+xml", headers=SVG_HEADERS)


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
    try:
        svg = render_monitoring(view, fmt="svg", title=row.analysis_label or row.analysis_key)
    except MmlrError:
        raise
    except Exception:
        log.exception("monitoring plot of pooled result %s failed", result_id)
        raise NotFoundError(
            f"the monitoring plot of pooled result {result_id} could not be drawn",
            hint="the details are in the server log") from None
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)


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
    try:
        svg = render_funnel(row.inputs, view, estimate=row.estimate, fmt="svg",
                            title=row.analysis_label or row.analysis_key)
    except MmlrError:
        raise
    except Exception:
        log.exception("funnel plot of pooled result %s failed", result_id)
        raise NotFoundError(
            f"the funnel plot of pooled result {result_id} could not be drawn",
            hint="the details are in the server log") from None
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)
