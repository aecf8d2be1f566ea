"""One pass of the whole flow (`mmlr run`): poll → screen → pool → digest.

Each step is idempotent, so the cycle is too: a second run with nothing new stores nothing new
and sends nothing. The *scheduled* cycle (daily by default) leaves the digest to its own job
(``MMLR_DIGEST_CRON``, weekly by default): subscribers want one summary a week, not a mail
per poll. The exception is an alert on a record in use (a retraction, erratum, expression of
concern or deletion of a trial report or an included record): that one cannot wait a week, so
the cycle builds and sends the digest at once.

The scheduler calls :func:`scheduled_cycle` / :func:`scheduled_digest`, module-level functions
that build their own context from the environment (APScheduler keeps job references in its job
store, so they must be importable by name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from store.context import AppContext, make_context
from store.engine import database_locked, database_unreachable, unreachable_reason
from store.errors import LockedError, MmlrError
from store.settings import load_settings

log = logging.getLogger(__name__)


@dataclass
class CycleSummary:
    steps: list[tuple[str, str]] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)
    digest_id: int | None = None

    def add(self, step: str, summary: Any) -> None:
        text = summary.describe() if hasattr(summary, "describe") else str(summary)
        self.steps.append((step, text))

    def describe(self) -> str:
        lines = []
        for step, text in self.steps:
            first, *rest = text.splitlines() or [""]
            lines.append(f"{step:7} {first}")
            lines.extend(f"        {line}" for line in rest)
        lines.extend(f"digest  {line}" for line in self.deliveries)
        return "\n".join(lines)


def urgent_alerts(ctx: AppContext) -> int:
    """Alerts on records in use that no digest has reported yet."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from store.models import Alert

    with ctx.sessions() as session:
        stmt = select(func.count()).select_from(Alert).where(
            col(Alert.digest_id).is_(None), col(Alert.in_analysis).is_(True))
        return int(session.exec(stmt).one())


def run_cycle(ctx: AppContext, *, progress: bool = False, digest: bool = True) -> CycleSummary:
    """poll → screen → pool, then the digest: always with ``digest`` (``mmlr run``), else only
    when an alert on a record in use is waiting (the scheduled cycle; module docstring)."""
    from monitor.poll import poll
    from reports.analyses import check_analyses_file
    from reports.digest import build_digest, deliver_digest
    from reports.network_inputs import brief, current_networks
    from reports.pool import pool_all
    from screening.health import screening_health
    from screening.service import check_prior_query, screen

    # Fail before polling, not after, when the keyword prior would score and cannot read
    # MMLR_QUERY (`mmlr poll` alone never checks: PubMed may read more than the prior), or
    # when the analyses file would stop the pooling.
    check_prior_query(ctx)
    check_analyses_file(ctx.settings.analyses_file)
    summary = CycleSummary()
    polled = poll(ctx, progress=progress)
    summary.add("poll", polled)
    if polled.interrupted:
        # SIGTERM (or the worker shutting down) asked the process to stop: screening, pooling
        # and a digest after it would keep going past that request, and a container manager
        # kills a process that does not stop (docker stop: after 10 s), maybe mid-delivery.
        log.warning("cycle stopped after the interrupted poll; the next run resumes it")
        summary.add("cycle", "stopped after the interrupted poll: no screening, pooling or "
                             "digest; the next run resumes the poll and does them")
        return summary
    try:
        summary.add("screen", screen(ctx, progress=progress, on_schedule=True))
    except LockedError as exc:
        # Someone else is screening (the web app retraining after curators' decisions): the
        # next screening scores what this poll stored. The pool, and a digest that cannot
        # wait (an alert on a record in use), must not be skipped until the next cycle.
        log.info("cycle: screening skipped: %s", exc.one_line())
        summary.add("screen", f"skipped: {exc.one_line()}")
    try:
        summary.add("pool", pool_all(ctx))
    except LockedError as exc:
        # Another run (`mmlr pool` by hand, another worker) is storing the same snapshots.
        log.info("cycle: pooling skipped: %s", exc.one_line())
        summary.add("pool", f"skipped: {exc.one_line()}")
    with ctx.sessions() as session:
        summary.add("network", brief(current_networks(
            session, ctx.settings.analyses_file, ctx.settings.pool_method)))
    urgent = 0 if digest else urgent_alerts(ctx)
    if digest or urgent:
        built = build_digest(ctx, health=screening_health)
        summary.digest_id = built.id
        summary.deliveries = deliver_digest(ctx, built)
        if urgent:
            log.warning("digest #%s sent ahead of MMLR_DIGEST_CRON: %d alert(s) on records in "
                        "use", built.id, urgent)
    else:
        summary.add("digest", "not built: the digest follows MMLR_DIGEST_CRON (no alert on a "
                              "record in use is waiting)")
    log.info(
        "cycle done: %s",
        "; ".join(f"{s}: {t.splitlines()[0] if t else ''}" for s, t in summary.steps),
    )
    return summary


@contextmanager
def scheduled_job(what: str) -> Iterator[Callable[[], AppContext]]:
    """Run a scheduler job's body and log how it ended; yields a context factory (the context
    is disposed of afterwards).

    A scheduler job must log, not die silently. Another worker holding the job's lock is no
    failure (it does the work): one INFO line. An expected failure (NCBI unreachable, the
    retry budget spent, the SMTP server refusing, the database gone or going away mid-job) is
    one ERROR line with its reason, which is all the worker's terminal shows; only an
    unexpected error gets its traceback, in the log file.
    """
    made: list[AppContext] = []

    def context() -> AppContext:
        made.append(make_context(load_settings()))
        return made[-1]

    try:
        yield context
    except LockedError as exc:
        log.info("scheduled %s skipped: %s", what, exc.one_line())
    except MmlrError as exc:
        log.error("scheduled %s failed: %s", what, exc.one_line())
    except Exception as exc:
        if database_locked(exc):  # another process's transaction: over when it ends
            log.error("scheduled %s failed: the database is locked by another process: %s "
                      "(the next run resumes)", what, unreachable_reason(exc))
        elif not database_unreachable(exc):
            log.exception("scheduled %s failed", what)
        else:  # an outage, not a bug: the next run resumes what this one left (checkpoints)
            log.error("scheduled %s failed: the database is unreachable: %s (the next run "
                      "resumes)", what, unreachable_reason(exc))
    finally:
        for ctx in made:
            ctx.dispose()


def scheduled_cycle() -> None:
    """Scheduler entry point for the monitoring cycle."""
    from monitor.scheduler import claim_tick

    with scheduled_job("cycle") as context:
        ctx = context()
        if claim_tick(ctx, "poll-cycle"):
            run_cycle(ctx, digest=False)


def scheduled_digest() -> None:
    """Scheduler entry point for the (weekly) digest."""
    from monitor.scheduler import claim_tick
    from reports.digest import build_digest, deliver_digest
    from screening.health import screening_health

    with scheduled_job("digest") as context:
        ctx = context()
        if claim_tick(ctx, "digest"):
            deliver_digest(ctx, build_digest(ctx, health=screening_health))
