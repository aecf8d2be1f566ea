"""The APScheduler 3.x scheduler of ``mmlr serve`` / ``mmlr worker``.

Jobs have explicit ids and are added with ``replace_existing`` so restarting a worker updates
them instead of duplicating them; ``coalesce`` runs a job once after downtime rather than once
per missed slot; ``max_instances=1`` stops a slow cycle from overlapping the next one inside a
process (across processes the database lock in :mod:`store.locks`, taken by ``poll()``, does
that). Jobs live in the application database (``apscheduler_jobs``, owned by APScheduler and
excluded from Alembic), so they survive restarts, and ``mmlr copy-db`` moves them with the
review. Functions are stored as textual references (``"monitor.cycle:scheduled_cycle"``) that
read their settings from the environment, so nothing un-picklable goes into the job store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import ConfigError
from store.ids import is_ascii_number
from store.settings import Settings

if TYPE_CHECKING:
    from store.context import AppContext

log = logging.getLogger(__name__)

#: Misfire grace: a job whose slot passed less than this many seconds ago still runs.
MISFIRE_GRACE_SECONDS = 3600


@dataclass(frozen=True)
class JobSpec:
    func: str | Callable[[], Any]  # "module:function" (persistable) or a module-level callable
    cron: str  # five-field crontab, UTC


def default_jobs(settings: Settings) -> dict[str, JobSpec]:
    return {
        "poll-cycle": JobSpec("monitor.cycle:scheduled_cycle", settings.poll_cron),
        "digest": JobSpec("monitor.cycle:scheduled_digest", settings.digest_cron),
        "modified-pass": JobSpec("monitor.poll:scheduled_modified_pass", settings.modified_cron),
    }


def _cron_setting(job_id: str) -> tuple[str, str]:
    """(settings attribute, environment variable) of the cron a job id follows."""
    if "digest" in job_id:
        return "digest_cron", "MMLR_DIGEST_CRON"
    if "modified" in job_id:
        return "modified_cron", "MMLR_MODIFIED_CRON"
    return "poll_cron", "MMLR_POLL_CRON"


def _spec(job_id: str, value: JobSpec | str | Callable[[], Any], settings: Settings) -> JobSpec:
    if isinstance(value, JobSpec):
        return value
    # A bare function: a digest job follows the digest cron, a modified-pass job the modified
    # cron, every other job the poll cron.
    return JobSpec(value, getattr(settings, _cron_setting(job_id)[0]))


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_days(field: str) -> str:
    """Crontab day-of-week numbers (0/7 = Sunday) as names.

    APScheduler 3 numbers days from Monday = 0, and its ``from_crontab`` passes the numbers
    through unchanged, so "0 7 * * 1" (Monday in crontab) would fire on Tuesday.
    """
    def name(token: str) -> str:
        if not is_ascii_number(token):
            return token
        number = int(token)
        if number > 7:
            raise ValueError(f"day of week {number} is out of range 0-7")
        return _DAY_NAMES[number]

    parts = []
    for item in field.split(","):
        spec, slash, step = item.partition("/")
        spec = "-".join(name(t) for t in spec.split("-"))
        parts.append(spec + (slash + step if slash else ""))
    return ",".join(parts)


def _trigger(job_id: str, cron: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger

    setting = _cron_setting(job_id)[1]
    try:
        fields = cron.split()
        if len(fields) != 5:
            raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
        minute, hour, day, month, dow = fields
        trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month,
                              day_of_week=_crontab_days(dow), timezone="UTC")
    except ValueError as exc:
        raise ConfigError(f"{setting} {cron!r} is not a valid crontab: {exc}",
                          hint="five fields, e.g. '0 6 * * *' (UTC)") from None
    # A well-formed cron can name a date that never comes ("0 6 31 2 *", 31 February).
    # APScheduler then adds the job paused, without a word, and the job never runs.
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ConfigError(f"{setting} {cron!r} never fires: no date matches it (such as "
                          "31 February)",
                          hint="e.g. '0 6 * * *' (UTC)")
    return trigger


def check_cron(job_id: str, cron: str) -> None:
    """ConfigError, as at start, when the cron of ``job_id`` is malformed or never fires."""
    _trigger(job_id, cron)


def longest_gap(job_id: str, cron: str, after: datetime, *, fires: int = 12) -> timedelta:
    """The longest time between two of the next ``fires`` firings of ``cron`` after ``after``
    (ConfigError, as at start, when the cron is malformed or never fires): how long a job of
    that cron may normally go without running."""
    trigger = _trigger(job_id, cron)
    previous = trigger.get_next_fire_time(None, after)
    gap = timedelta(0)
    for _ in range(fires):
        following = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        if following is None:
            break
        gap = max(gap, following - previous)
        previous = following
    return gap


def build_scheduler(settings: Settings, *,
                    jobs: Mapping[str, JobSpec | str | Callable[[], Any]] | None = None) -> Any:
    """A configured (not yet started) BackgroundScheduler with its jobs added. Its loop runs
    in a thread of its own: `mmlr worker` waits for a stop signal in the main thread
    (monitor/signals.py), `mmlr serve` runs the web app there."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy.pool import NullPool

    from monitor.job_store import MmlrJobStore, quiet_outages

    quiet_outages()
    scheduler = BackgroundScheduler(
        # NullPool: the job store touches the database once a minute at most; pooled
        # connections would outlive the scheduler's shutdown (psycopg warns about them).
        jobstores={"default": MmlrJobStore(
            url=settings.db_url, engine_options={"poolclass": NullPool})},
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": MISFIRE_GRACE_SECONDS},
        timezone="UTC",
    )
    specs = default_jobs(settings) if jobs is None else {
        job_id: _spec(job_id, value, settings) for job_id, value in jobs.items()}
    # Every cron is checked (a ConfigError naming it) before the job store is read.
    triggers = {job_id: _trigger(job_id, spec.cron) for job_id, spec in specs.items()}
    stored = stored_next_runs(settings.db_url)
    for job_id, spec in specs.items():
        trigger = triggers[job_id]
        due = stored.get(job_id)
        # Replacing the stored job would compute its next run from now: a slot that passed
        # while no worker ran (a restart across 06:00, a deploy across Monday's digest) would
        # be skipped to the next day or week. Keep a slot this cron fires at, so the
        # scheduler runs it late, once (coalesce), within the misfire grace. Only a slot
        # that has passed: a future one is the old cron's, and keeping it delayed a new,
        # more frequent cron to it (hourly waiting for 06:00, daily digests for Monday).
        keep = {"next_run_time": due} if (
            due is not None and due <= datetime.now(UTC)
            and trigger.get_next_fire_time(None, due) == due) else {}
        scheduler.add_job(spec.func, trigger=trigger, id=job_id,
                          name=job_id, replace_existing=True, coalesce=True, max_instances=1,
                          misfire_grace_time=MISFIRE_GRACE_SECONDS, **keep)
        log.info("scheduled job %s (%s, cron %s UTC)", job_id, spec.func, spec.cron)
    return scheduler


def stored_next_runs(db_url: str) -> dict[str, datetime]:
    """The next run time of each job in the job store (``apscheduler_jobs``), as the last
    scheduler left it; empty before the first worker started. Paused jobs (no next run) are
    left out."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return {}  # no database file yet, so no job store: nothing was scheduled before
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        if "apscheduler_jobs" not in inspect(engine).get_table_names():
            return {}
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs "
                                     "WHERE next_run_time IS NOT NULL")).all()
    finally:
        engine.dispose()
    # APScheduler stores the time as seconds since the epoch (UTC).
    return {row.id: datetime.fromtimestamp(float(row.next_run_time), UTC) for row in rows}


#: How far back the current tick of a cron is looked for, widening until one is found.
_LOOKBACKS = (timedelta(minutes=2), timedelta(hours=2), timedelta(days=2), timedelta(days=32),
              timedelta(days=367), timedelta(days=5 * 366))
#: A tick's claim is kept this long: far beyond the misfire grace, within which another
#: worker could still run the same tick.
_CLAIM_KEPT = timedelta(days=2)


def current_tick(trigger: Any, now: datetime) -> datetime | None:
    """The latest fire time of ``trigger`` at or before ``now``."""
    for lookback in _LOOKBACKS:
        tick = trigger.get_next_fire_time(None, now - lookback)
        if tick is None or tick > now:
            continue
        while True:
            after = trigger.get_next_fire_time(tick, tick + timedelta(seconds=1))
            if after is None or after > now:
                return tick  # type: ignore[no-any-return]
            tick = after
    return None


def claim_tick(ctx: AppContext, job_id: str) -> bool:
    """Whether this process runs ``job_id``'s current tick; False (logged) when another
    worker has.

    APScheduler 3 does not coordinate schedulers that share a job store: each worker may run
    the same tick, and the job locks only stop them running at the same moment. A quick job
    (a poll with nothing new) then ran twice, one after the other: two searches per tick on
    /searches, a weekly modified pass re-fetching every watched record twice.
    """
    from store.locks import claim_once

    cron = getattr(ctx.settings, _cron_setting(job_id)[0])
    tick = current_tick(_trigger(job_id, cron), datetime.now(UTC))
    if tick is None:  # no tick yet in the lookback (a cron just changed): nothing to share
        return True
    prefix = "tick:"
    if claim_once(ctx.engine, f"{prefix}{job_id}@{tick.isoformat()}", prefix=prefix,
                  keep=_CLAIM_KEPT):
        return True
    log.info("%s: the tick of %s UTC was run by another worker", job_id,
             f"{tick:%Y-%m-%d %H:%M}")
    return False
