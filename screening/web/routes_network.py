"""The network meta-analysis in the browser (``reports.network``): every network of the
review, and for the one chosen its plot, forest plot and effects against no maintenance,
league table, ranking, heterogeneity and inconsistency, direct against indirect evidence,
the trials with the arms they entered as, and the network as each digest froze it.
``/network.svg?key=…`` and
``/network-forest.svg?key=…`` are the plots alone; ``GET /api/network`` the same numbers for
machines.

Read-only and for every signed-in role. Computed on request from the stored evidence: a
network has a few dozen trials at most, and a verified estimate shows here at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from reports.network import NetworkResult
from reports.network_digest import history, history_tables
from reports.network_forest import render_network_forest_svg
from reports.network_inputs import (
    Fitted,
    NetworkInput,
    arms_naming_no_trial,
    current_networks,
    network_method,
    network_svg,
    summary_json,
)
from screening.web.api_schema import READ
from screening.web.deps import ApiReader, DbSession, Viewer
from screening.web.routes_estimates import SVG_HEADERS
from screening.web.templating import render
from store.errors import NotFoundError

router = APIRouter()


def _networks(request: Request, session: DbSession, without_high_rob: bool = False
              ) -> list[Fitted]:
    settings = request.app.state.settings
    return current_networks(session, settings.analyses_file, settings.pool_method,
                            without_high_rob=without_high_rob)


def _chosen(networks: list[Fitted], key: str | None) -> Fitted | None:
    if key:
        for item in networks:
            if item[0].key == key:
                return item
        raise NotFoundError(f"no network {key!r}",
                            hint="the network page lists the networks of the review")
    # Default: the first network that could be fitted (PFS before OS, post-ASCT first).
    return next((item for item in networks if item[1] is not None), None)


@router.get("/network")
def network_page(request: Request, session: DbSession, user: Viewer,
                 key: str | None = None, without_high_rob: bool = False) -> Response:
    networks = _networks(request, session, without_high_rob)
    chosen = _chosen(networks, key)
    settings = request.app.state.settings
    context: dict[str, Any] = {"networks": networks, "chosen": chosen,
                               "without_high_rob": without_high_rob,
                               "unmatched_arms": arms_naming_no_trial(
                                   session, settings.analyses_file),
                               "method": network_method(request.app.state.settings.pool_method)}
    if chosen is not None and chosen[1] is not None:
        net, res = chosen[0], chosen[1]
        # Markup: network_svg escapes every text it writes, so the page takes it as it is.
        context["svg"] = Markup(network_svg(net, res))  # noqa: S704
        context["forest"] = Markup(_forest(net, res))  # noqa: S704  (escaped, as above)
        # The digests keep the primary networks only.
        context["history"] = [] if without_high_rob else history_tables(
            history(session, net.key), res)
        context["league"] = {(r.treat, r.control): r for r in res.league()}
    return render(request, "network.html", context)


def _forest(net: NetworkInput, res: NetworkResult) -> str:
    return render_network_forest_svg(res, title=f"{net.label}: each treatment vs "
                                                f"{res.reference}")


@router.get("/network.svg")
def network_image(request: Request, session: DbSession, user: Viewer, key: str,
                  without_high_rob: bool = False) -> Response:
    return _image(request, session, key, without_high_rob, network_svg, "network")


@router.get("/network-forest.svg")
def network_forest_image(request: Request, session: DbSession, user: Viewer,
                         key: str, without_high_rob: bool = False) -> Response:
    return _image(request, session, key, without_high_rob, _forest, "network-forest")


def _image(request: Request, session: DbSession, key: str, without_high_rob: bool,
           draw: Callable[[NetworkInput, NetworkResult], str], stem: str) -> Response:
    chosen = _chosen(_networks(request, session, without_high_rob), key)
    if chosen is None or chosen[1] is None:
        raise NotFoundError(f"network {key!r} has no fit to draw",
                            hint=chosen[2] if chosen else None)
    slug = key.replace("/", "-") + ("-without-high-rob" if without_high_rob else "")
    return Response(draw(chosen[0], chosen[1]), media_type="image/svg+xml", headers={
        **SVG_HEADERS, "Content-Disposition": f'inline; filename="mmlr-{stem}-{slug}.svg"'})


@router.get("/api/network", responses=READ)
def network_json(request: Request, session: DbSession, user: ApiReader,
                 without_high_rob: bool = False) -> dict[str, Any]:
    return {"method": network_method(request.app.state.settings.pool_method),
            "without_high_rob": without_high_rob,
            "networks": [summary_json(*item)
                         for item in _networks(request, session, without_high_rob)]}
