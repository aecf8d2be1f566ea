"""The PRISMA 2020 flow of the review in the browser: the diagram (``reports.prisma_diagram``)
inline, the counts with their notes, and what was added since the last digest; the diagram
alone as ``/prisma.svg``, and the counts as data at ``GET /api/prisma``.

Read-only and for every signed-in role. The counts follow the app's screening setting, as
``mmlr export prisma`` does: under dual screening the records in conflict have a line (and a
box) of their own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlmodel import Session

from reports.prisma import (
    AUTOMATION_STAGE,
    BELOW_THRESHOLD_STAGE,
    NO_SINCE_REASON,
    OTHER_IDENTIFIED_STAGE,
    REVISED_STAGE,
    SINCE_NOTES,
    STOPPING_RULE,
    prisma_counts,
    prisma_figure,
    prisma_identities,
    prisma_since_last_digest,
)
from reports.prisma_diagram import prisma_svg
from screening.health import stopping_supported
from screening.model import VERIFIABLE_INCLUDES
from screening.prior import PRIOR_THRESHOLD
from screening.service import PRIOR_NAME, active_model
from screening.stopping import recall_text
from screening.web.api_schema import READ
from screening.web.deps import ApiReader, DbSession, Viewer, dual_screening
from screening.web.queue_view import screening_health
from screening.web.routes_estimates import SVG_HEADERS
from screening.web.templating import render
from store.searches import search_summary

router = APIRouter()


def flag_threshold_words(session: Session) -> str:
    """The flag threshold the records were ranked against, as the active model version made
    it: a classifier's is calibrated to the recall stored with it (MMLR_TARGET_RECALL when it
    was trained: a changed setting counts from the next ``mmlr screen``), which it cannot
    verify when trained on fewer than ``VERIFIABLE_INCLUDES`` includes; the keyword prior's
    is a fixed score."""
    mv = active_model(session)
    if mv is None:
        return "the classifier's flag threshold (no model has scored the records yet)"
    if mv.name == PRIOR_NAME:
        fixed = mv.threshold if mv.threshold is not None else PRIOR_THRESHOLD
        return (f"the keyword prior's flag threshold (a fixed score of {fixed:g}, not "
                "calibrated: no classifier has been trained yet)")
    target = (mv.config or {}).get("target_recall")
    if mv.threshold is None or not isinstance(target, int | float):
        return ("the classifier's flag threshold (not calibrated: too few decisions to "
                "cross-validate)")
    caveat = (f", which cannot be verified with only {mv.n_positive} includes"
              if mv.n_positive < VERIFIABLE_INCLUDES else "")
    return (f"the classifier's flag threshold (calibrated by cross-validation to a recall of "
            f"{recall_text(float(target))}{caveat})")

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
        "threshold_words": flag_threshold_words(session),
        "automation": n[AUTOMATION_STAGE], "below_threshold": n[BELOW_THRESHOLD_STAGE],
        "revised": n[REVISED_STAGE], "stopping_rule": STOPPING_RULE,
        "other_methods": n[OTHER_IDENTIFIED_STAGE],
        "search": search_summary(session, request.app.state.settings.query)})


@router.get("/prisma.svg")
def prisma_image(request: Request, session: DbSession, user: Viewer) -> Response:
    settings = request.app.state.settings
    svg = prisma_figure(session, dual=dual_screening(request), automation_stops=(
        stopping_supported(session, target_recall=settings.stopping_recall)))
    return Response(svg, media_type="image/svg+xml", headers={
        **SVG_HEADERS, "Content-Disposition": f'inline; filename="{_SVG_NAME}"'})


@router.get("/api/prisma", responses=READ)
def prisma_json(request: Request, session: DbSession, user: ApiReader) -> dict[str, Any]:
    """The PRISMA 2020 flow as data, as ``/prisma`` and ``mmlr export prisma`` count it: each
    stage with its count and note (the databases column, the other-methods column of the
    records added by PMID — one line, 0, without any — then the included studies both join
    in), each identity between them, and what was added since the last digest."""
    settings = request.app.state.settings
    counts = prisma_counts(session, dual=dual_screening(request), automation_stops=(
        stopping_supported(session, target_recall=settings.stopping_recall)))
    since = prisma_since_last_digest(session)
    return {
        "stages": [{"stage": stage, "count": value, "note": note,
                    "since": since.counts.get(stage) if since is not None else None}
                   for stage, value, note in counts],
        "identities": [{"sum": words, "count": whole, "parts": parts}
                       for words, whole, parts in prisma_identities(counts)],
        "since": since.at.isoformat() if since is not None else None,
    }
