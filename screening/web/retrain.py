"""Retraining in the background after enough new decisions.

A request never waits for the classifier: when the decisions made since the active model
reach ``settings.retrain_min_decisions`` the web app starts ``screening.service.screen`` in a
daemon thread, at most one at a time per process (across processes, ``screen`` itself takes
the job lock and a second caller gets LockedError, which is logged, not shown as a failure).
Progress is read from KeyValue "screening.progress", which ``screen`` writes.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from store.context import AppContext
from store.errors import LockedError, MmlrError
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


class Retrainer:
    """Starts at most one background ``screen`` run at a time."""

    def __init__(self, ctx: AppContext, *,
                 screen: Callable[[AppContext], Any] | None = None) -> None:
        self.ctx = ctx
        self._screen = screen or _default_screen
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_result: str | None = None
        self.last_error: str | None = None
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def maybe_start(self, session: Session) -> bool:
        """Start a run when enough new decisions exist and none is running. Never blocks."""
        threshold = self.ctx.settings.retrain_min_decisions  # at least 1 (store.settings)
        if self.running or decisions_since_model(session) < threshold:
            return False
        return self.start()

    def start(self) -> bool:
        with self._lock:
            if self.running:
                return False
            self._thread = threading.Thread(target=self._run, name="mmlr-retrain", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        log.info("background screening started")
        try:
            summary = self._screen(self.ctx)
            describe = getattr(summary, "describe", None)
            self.last_result = describe() if callable(describe) else "screening finished"
            self.last_error = None
            log.info("background screening finished: %s", self.last_result)
        except LockedError as exc:
            log.info("background screening skipped: %s", exc.one_line())
        except ImportError:
            self.last_error = "the classifier is not installed (screening.service is missing)"
            log.warning("background screening unavailable: screening.service is missing")
        except MmlrError as exc:
            self.last_error = exc.one_line()
            log.warning("background screening failed: %s", exc.one_line())
        except Exception:
            self.last_error = "screening failed unexpectedly; the details are in the server log"
            log.exception("background screening failed")
        finally:
            self.runs += 1

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
