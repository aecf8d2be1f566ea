"""One job at a time in a background thread of the web app.

A request never waits for a long job (retraining the classifier, re-pooling the evidence): it
starts the job in a daemon thread and the page shows its state. At most one run per job per
process; across processes the job itself takes its database lock (``store.locks.job_lock``),
and a second caller's LockedError is logged, not shown as a failure: the other run does the
work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from store.context import AppContext
from store.errors import LockedError, MmlrError
from store.models import utcnow

log = logging.getLogger(__name__)


class BackgroundJob:
    """Runs ``job(ctx)`` in a daemon thread, one run at a time; keeps how the last one ended.

    ``what`` names the job in the log and in the messages the pages show ("screening",
    "pooling")."""

    def __init__(self, ctx: AppContext, job: Callable[[AppContext], Any], *, what: str) -> None:
        self.ctx = ctx
        self.what = what
        self._job = job
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_result: str | None = None
        self.last_error: str | None = None
        #: What the last run returned (None when it failed or was skipped).
        self.last_summary: Any = None
        #: Why the last run did nothing: another process held the job's lock.
        self.last_skipped: str | None = None
        self.started_by: str | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, by: str | None = None) -> bool:
        """Start a run unless one is running; never blocks on the job itself."""
        with self._lock:
            if self.running:
                return False
            self.started_by, self.started_at, self.finished_at = by, utcnow(), None
            self.last_summary = self.last_skipped = None
            self._thread = threading.Thread(target=self._run, name=f"mmlr-{self.what}",
                                            daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        log.info("background %s started", self.what)
        try:
            summary = self._job(self.ctx)
            self.last_summary = summary
            describe = getattr(summary, "describe", None)
            self.last_result = describe() if callable(describe) else f"{self.what} finished"
            self.last_error = None
            log.info("background %s finished: %s", self.what, self.last_result)
        except LockedError as exc:
            self.last_skipped = exc.one_line()
            log.info("background %s skipped: %s", self.what, exc.one_line())
        except ImportError:
            self.last_error = self.missing_module_message()
            log.warning("background %s unavailable: a module is missing", self.what)
        except MmlrError as exc:
            self.last_error = exc.one_line()
            log.warning("background %s failed: %s", self.what, exc.one_line())
        except Exception:
            self.last_error = (f"{self.what} failed unexpectedly; the details are in the "
                               "server log")
            log.exception("background %s failed", self.what)
        finally:
            self.finished_at = utcnow()
            self.runs += 1

    def missing_module_message(self) -> str:
        return f"{self.what} is not available in this installation (a module is missing)"

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
