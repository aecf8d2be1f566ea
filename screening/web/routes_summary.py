"""The summary of findings in the browser: one table of every pooled analysis, as ``mmlr
export sof`` writes it (``reports.export_sof``), with the CSV and Markdown a panel takes away,
and the network meta-analysis' estimates of each treatment against no maintenance.

Read-only and for every signed-in role: it shows what the estimates page shows, one row per
analysis, with links to each analysis' section there.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from reports.export_sof import (
    LOW_ROB_ONLY_EMPTY,
    NOT_ESTIMABLE,
    network_notes,
    network_rows,
    sof_markdown,
    sof_rows,
    write_sof_csv,
)
from reports.monitoring_view import status_label
from reports.network_inputs import Fitted, current_networks
from screening.web.deps import DbSession, Viewer
from screening.web.downloads import csv_download
from screening.web.templating import render

router = APIRouter()

#: Downloads, not pages: the browser saves them under a name that says what they are.
_CSV_NAME = "mmlr-summary-of-findings.csv"
_MD_NAME = "mmlr-summary-of-findings.md"


def _networks(request: Request, session: DbSession) -> list[Fitted]:
    settings = request.app.state.settings
    return current_networks(session, settings.analyses_file, settings.pool_method)


@router.get("/summary")
def summary_page(request: Request, session: DbSession, user: Viewer) -> Response:
    networks = _networks(request, session)
    return render(request, "summary.html", {
        "rows": sof_rows(session), "network_rows": network_rows(networks),
        "network_notes": network_notes(networks),
        # The words the digest and /estimates use ("conventionally significant only"), not
        # the stored code with its underscores replaced ("conventional only").
        "monitoring_label": status_label, "low_rob_only_empty": LOW_ROB_ONLY_EMPTY,
        "pi_not_estimable": NOT_ESTIMABLE})


@router.get("/summary.csv")
def summary_csv(session: DbSession, user: Viewer, excel: bool = False) -> Response:
    return csv_download(lambda fh: write_sof_csv(session, fh), _CSV_NAME, excel=excel)


@router.get("/summary.md")
def summary_markdown(request: Request, session: DbSession, user: Viewer) -> Response:
    return Response(sof_markdown(session, _networks(request, session)),
                    media_type="text/markdown; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{_MD_NAME}"'})
