"""``create_app(settings)``: the curator web app and the JSON API.

Everything the app needs is built here from the settings (no import-time globals): its own
AppContext (engine + session factory), the templates, the background retrainer and pooler.
Middleware, outermost first: security headers → catch-all 500 → signed session cookie →
request body limit (1 MiB, ``body_limit.py``) → no NUL or bidi override anywhere in the request
(``refused_text.py``) → routes (whose MmlrError/HTTP errors are mapped by
``screening.web.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from reports.pool import pool_all
from screening.web import (
    routes_account,
    routes_admin,
    routes_api,
    routes_audit,
    routes_auth,
    routes_conflicts,
    routes_digests,
    routes_estimates,
    routes_fetch,
    routes_fulltext,
    routes_network,
    routes_prisma,
    routes_records,
    routes_search,
    routes_searches,
    routes_subscribers,
    routes_summary,
    routes_trials,
    routes_unsubscribe,
)
from screening.web.background import BackgroundJob
from screening.web.body_limit import BodyLimitMiddleware
from screening.web.deps import SESSION_MAX_AGE, check_path_ids
from screening.web.errors import CatchAllMiddleware, install_error_handlers
from screening.web.explanations import ModelCache
from screening.web.fetch import Fetcher, PmidFetch
from screening.web.refused_text import RefusedTextMiddleware
from screening.web.retrain import Retrainer
from screening.web.security import SecurityHeadersMiddleware
from screening.web.templating import make_templates
from store.context import AppContext, make_context
from store.settings import Settings
from store.trial_match import MatchMemo

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings, *, ctx: AppContext | None = None,
               fetch: Fetcher | None = None) -> FastAPI:
    """Build the app. ``ctx`` lets a caller share an existing context (tests, `mmlr demo`);
    by default the app builds and owns its own. ``fetch`` fetches PMIDs from PubMed for
    ``/fetch`` (``monitor.service`` passes the poll; without it the page says it cannot)."""
    owns_ctx = ctx is None
    context = ctx if ctx is not None else make_context(settings)
    secure = settings.base_url.lower().startswith("https://")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.fetcher.stop()  # a fetch of many batches ends after the current one
        app.state.retrainer.join(timeout=60)
        app.state.pooler.join(timeout=60)
        app.state.fetcher.join(timeout=60)
        if owns_ctx:
            context.dispose()

    # The OpenAPI schema is served by routes_api behind a login, like the rest of the API.
    app = FastAPI(title="mmlr", version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(check_path_ids)])
    app.state.ctx = context
    app.state.settings = settings
    app.state.templates = make_templates()
    app.state.retrainer = Retrainer(context)
    # "Pool now" on /estimates (routes_estimates): the same job as `mmlr pool`, in the
    # background, under the same database lock.
    app.state.pooler = BackgroundJob(context, pool_all, what="pooling")
    # "Fetch from PubMed" (routes_fetch): `mmlr poll --pmids` in the background.
    app.state.fetcher = PmidFetch(context, fetch)
    # Loaded models for the record page's "Why this score" (keyed by version id).
    app.state.model_cache = ModelCache()
    # Trial matches of the records shown, between requests (the queue page, GET /api/records).
    app.state.trial_matches = MatchMemo()

    install_error_handlers(app)
    for module in (routes_auth, routes_account, routes_records, routes_fulltext,
                   routes_conflicts, routes_trials,
                   routes_estimates, routes_summary, routes_network, routes_prisma,
                   routes_search, routes_searches, routes_fetch, routes_digests, routes_admin,
                   routes_audit, routes_subscribers,
                   routes_unsubscribe, routes_api):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # The pages say they have no icon (base.html); a browser opening the JSON API or a
        # download asks anyway, and a 404 there is noise in every console and log.
        return Response(status_code=204)

    # add_middleware puts each new one outermost: add innermost first.
    app.add_middleware(RefusedTextMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SessionMiddleware, secret_key=settings.secret(),
                       session_cookie="mmlr_session", max_age=SESSION_MAX_AGE,
                       same_site="lax", https_only=secure)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts=secure)
    log.info("web app created for %s", settings.base_url)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmlr")
    except PackageNotFoundError:
        return "0+unknown"
