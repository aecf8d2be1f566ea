"""The scheduler's job store (APScheduler's SQLAlchemy store, in mmlr's database) and how a
database outage reads in the log.

APScheduler asks its store for the due jobs whenever it wakes and, when that fails, logs a
WARNING quoting the driver's whole message (several lines, a link) and tries again every 10
seconds. A PostgreSQL restart of five minutes wrote 30 of them per worker, and no line said
when it was over. Here an outage (``store.engine.database_unreachable``: the server stopped,
restarting, out of reach) is one WARNING when it begins, one every :data:`OUTAGE_REMINDER`
while it lasts, and one when the store answers again; APScheduler's own line for it is
dropped (:class:`OutageFilter`). Any other error (a job table dropped, a bug) keeps
APScheduler's line: only the outage this module reported is hidden.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from store.engine import database_unreachable, unreachable_reason

log = logging.getLogger(__name__)

#: How often a continuing outage is logged again: often enough that a log read at any time
#: shows it still going on, rarely enough not to bury other lines.
OUTAGE_REMINDER = timedelta(minutes=10)
#: The logger APScheduler's scheduler writes to.
SCHEDULER_LOGGER = "apscheduler.scheduler"


class JobStoreUnreachable(Exception):
    """The due jobs could not be read because the database is unreachable; already logged
    by :class:`OutageLog`, so :class:`OutageFilter` drops APScheduler's line about it."""


class OutageLog:
    """The log lines of one job store's outages: its start, a reminder every
    :data:`OUTAGE_REMINDER`, its end (with how long it lasted)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.since: datetime | None = None  # the current outage's first failed read
        self._told: datetime | None = None  # when it was last logged
        self.failures = 0  # failed reads in the current outage
        # The last read that was answered. The scheduler reads only when a job is due or a
        # retry comes, so an outage began somewhere between this and ``since``: counted from
        # ``since`` alone, a 50 s outage was reported as 20 s.
        self._last_answer: datetime | None = None
        self._answered_before: datetime | None = None  # _last_answer when this outage began

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        if self.since is None:
            self.since = self._told = now
            self._answered_before = self._last_answer
            log.warning("the scheduler cannot read its jobs, the database is unreachable: %s "
                        "(a job whose time comes meanwhile runs once it is back)",
                        unreachable_reason(exc))
        elif self._told is not None and now - self._told >= OUTAGE_REMINDER:
            self._told = now
            log.warning("the database is still unreachable after %s: %s",
                        _duration(now - self.since), unreachable_reason(exc))

    def answered(self) -> None:
        now = self.clock()
        self._last_answer = now
        if self.since is None:
            return
        shortest = _duration(now - self.since)
        if self._answered_before is None:  # nothing read before it: no upper bound
            span = f"at least {shortest}"
        else:
            longest = _duration(now - self._answered_before)
            span = shortest if longest == shortest else f"{shortest} to {longest}"
        log.warning("the scheduler reads its jobs again: the database was unreachable for %s",
                    span)
        self.since = self._told = self._answered_before = None
        self.failures = 0


def _duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min"


class MmlrJobStore(SQLAlchemyJobStore):  # type: ignore[misc]  # APScheduler has no types
    """APScheduler's SQLAlchemy job store whose outages are logged by :class:`OutageLog`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = OutageLog()

    def get_due_jobs(self, now: datetime) -> list[Any]:
        try:
            jobs: list[Any] = super().get_due_jobs(now)
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            self.outage.failed(exc)
            # APScheduler logs this exception and retries; OutageFilter recognises it.
            raise JobStoreUnreachable(unreachable_reason(exc)) from exc
        self.outage.answered()
        return jobs

    def get_next_run_time(self) -> datetime | None:
        # APScheduler asks this after the due jobs, outside the try that retries those: an
        # outage that begins between the two calls would end the scheduler's thread, and with
        # it every later run, without a word. Instead the outage is logged as above and the
        # scheduler wakes again after its retry interval, to find out through get_due_jobs.
        try:
            value: datetime | None = super().get_next_run_time()
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            self.outage.failed(exc)
            retry = getattr(self._scheduler, "jobstore_retry_interval", 10.0)
            return datetime.now(UTC) + timedelta(seconds=float(retry))
        return value


class OutageFilter(logging.Filter):
    """Drops APScheduler's "Error getting due jobs" line for an outage :class:`OutageLog`
    reported already (its argument is a :class:`JobStoreUnreachable`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, JobStoreUnreachable) for arg in args)


def quiet_outages() -> None:
    """Install :class:`OutageFilter` on APScheduler's logger (once per process)."""
    logger = logging.getLogger(SCHEDULER_LOGGER)
    if not any(isinstance(f, OutageFilter) for f in logger.filters):
        logger.addFilter(OutageFilter())
