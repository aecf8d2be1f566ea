"""Retraining in the background after enough new decisions.

A request never waits for the classifier: when the decisions made since the active model
reach ``settings.retrain_min_decisions`` the web app starts ``screening.service.screen`` in a
daemon thread (``screening.web.background``: one run at a time per process; across processes
``screen`` takes the job lock) — unless the run could change nothing: the keyword prior is
active and the labels cannot train a classifier yet (``screening.service.would_change_model``).
Progress is read from KeyValue "screening.progress", which ``screen`` writes.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from screening.web.background import BackgroundJob
from store.context import AppContext
from store.models import Decision, ModelVersion

log = logging.getLogger(__name__)


def decisions_since_model(session: Session) -> int:
    """Decisions newer than the active model (all decisions when there is none)."""
    model = session.exec(select(ModelVersion).where(col(ModelVersion.active).is_(True))
                         .order_by(col(ModelVersion.created_at).desc())).first()
    stmt = select(func.count()).select_from(Decision)
    if model is not None:
        stmt = stmt.where(Decision.created_at > model.created_at)
    return int(session.exec(stmt).one())


def _default_screen(ctx: AppContext) -> Any:
    module = importlib.import_module("screening.service")
    return module.screen(ctx)


class Retrainer(BackgroundJob):
    """Starts at most one background ``screen`` run at a time."""

    def __init__(self, ctx: AppContext, *,
                 screen: Callable[[AppContext], Any] | None = None) -> None:
        super().__init__(ctx, screen or _default_screen, what="screening")

    def maybe_start(self, session: Session) -> bool:
        """Start a run when enough new decisions exist, it could train a new model and none is
        running. Never blocks."""
        threshold = self.ctx.settings.retrain_min_decisions  # at least 1 (store.settings)
        if self.running or decisions_since_model(session) < threshold:
            return False
        # While the keyword prior cannot be replaced (fewer than 2 includes or 2 excludes), no
        # run changes anything, and the count of decisions since the model never resets: every
        # decision would start a no-op run (and the banner say it retrains).
        try:
            service = importlib.import_module("screening.service")
        except ModuleNotFoundError:
            return self.start()  # which says the classifier is not installed
        if not service.would_change_model(session, self.ctx):
            log.debug("no background screening: the keyword prior cannot be replaced yet")
            return False
        return self.start()

    def missing_module_message(self) -> str:
        return "the classifier is not installed (screening.service is missing)"
