"""The PRISMA 2020 flow of the review in the browser: the diagram (``reports.prisma_diagram``)
inline, the counts with their notes, and what was added since the last digest; the diagram
alone as ``/prisma.svg``.

Read-only and for every signed-in role. The counts follow the app's screening setting, as
``mmlr export prisma`` does: under dual screening the records in conflict have a line (and a
box) of their own.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from reports.prisma import (
    AUTOMATION_STAGE,
    BELOW_THRESHOLD_STAGE,
    NO_SINCE_REASON,
    REVISED_STAGE,
    SINCE_NOTES,
    STOPPING_RULE,
    prisma_counts,
    prisma_figure,
    prisma_since_last_digest,
)
from reports.prisma_diagram import prisma_svg
from screening.health import stopping_supported
from screening.web.deps import DbSession, Viewer, dual_screening
from screening.web.queue_view import screening_health
from screening.web.routes_estimates import SVG_HEADERS
from screening.web.templating import render
from store.searches import search_summary

router = APIRouter()

_SVG_NAME = "mmlr-prisma.svg"


@router.get("/prisma")
def prisma_page(request: Request, session: DbSession, user: Viewer) -> Response:
    dual = dual_screening(request)
    # The records below the flag threshold count as not screened (removed before screening)
    # only once the stopping test supports stopping, which the page states.
    health = screening_health(session, dual=dual,
                              target_recall=request.app.state.settings.stopping_recall)
    counts = prisma_counts(session, dual=dual,
                           automation_stops=bool(health and health["may_stop"]))
    n = {stage: value for stage, value, _ in counts}
    since = prisma_since_last_digest(session)
    # Markup: prisma_svg escapes every text it writes, so the page takes it as it is.
    svg = Markup(prisma_svg(counts, since=since))  # noqa: S704
    return render(request, "prisma.html", {
        "counts": counts, "since": since, "svg": svg, "since_notes": SINCE_NOTES,
        "no_since_reason": NO_SINCE_REASON, "health": health,
        "target_recall": request.app.state.settings.target_recall,
        "automation": n[AUTOMATION_STAGE], "below_threshold": n[BELOW_THRESHOLD_STAGE],
        "revised": n[REVISED_STAGE], "stopping_rule": STOPPING_RULE,
        "search": search_summary(session, request.app.state.settings.query)})


@router.get("/prisma.svg")
def prisma_image(request: Request, session: DbSession, user: Viewer) -> Response:
    settings = request.app.state.settings
    svg = prisma_figure(session, dual=dual_screening(request), automation_stops=(
        stopping_supported(session, target_recall=settings.stopping_recall)))
    return Response(svg, media_type="image/svg+xml", headers={
        **SVG_HEADERS, "Content-Disposition": f'inline; filename="{_SVG_NAME}"'})
