"""Scheduler jobs in the application database, and the database-level job locks."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from monitor.scheduler import (
    MISFIRE_GRACE_SECONDS,
    JobSpec,
    _trigger,
    build_scheduler,
    current_tick,
)
from store.context import AppContext
from store.errors import ConfigError, LockedError
from store.locks import _holder, _process_start, job_lock
from store.models import JobLock, utcnow
from store.settings import Settings


def scheduled_noop() -> None:  # a module-level job function (picklable by reference)
    return None


def test_jobs_with_ids_in_the_database(ctx: AppContext, settings: Settings) -> None:
    for _ in range(2):  # a restart replaces the jobs instead of duplicating them
        scheduler = build_scheduler(settings)
        scheduler.start(paused=True)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"poll-cycle", "digest", "modified-pass"}
        cycle = jobs["poll-cycle"]
        assert cycle.coalesce is True and cycle.max_instances == 1
        assert cycle.misfire_grace_time == MISFIRE_GRACE_SECONDS
        assert str(cycle.trigger.timezone) == "UTC"
        assert "hour='6'" in str(cycle.trigger)
        # crontab "0 7 * * 1" is Monday (APScheduler's from_crontab would say Tuesday)
        monday = jobs["digest"].trigger.get_next_fire_time(
            None, datetime(2026, 11, 24, tzinfo=UTC))
        assert monday == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
        assert cycle.func_ref == "monitor.cycle:scheduled_cycle"
        # the weekly modification-date pass: MMLR_MODIFIED_CRON, default Sunday 05:00 UTC
        modified = jobs["modified-pass"]
        assert modified.func_ref == "monitor.poll:scheduled_modified_pass"
        assert settings.modified_cron == "0 5 * * 0"
        assert modified.coalesce is True and modified.max_instances == 1
        sunday = modified.trigger.get_next_fire_time(None, datetime(2026, 11, 24, tzinfo=UTC))
        assert sunday == datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
        scheduler.shutdown(wait=False)
    assert "apscheduler_jobs" in inspect(ctx.engine).get_table_names()
    with ctx.engine.connect() as conn:
        ids = sorted(r[0] for r in conn.execute(text("SELECT id FROM apscheduler_jobs")))
    assert ids == ["digest", "modified-pass", "poll-cycle"]


def test_a_slot_missed_while_no_worker_ran_still_runs(ctx: AppContext,
                                                      settings: Settings) -> None:
    """Every worker replaces its jobs at start. Before, that computed the next run from the
    start: a restart across 06:00 skipped that day's poll (and one across Monday 07:00 the
    week's digest), although missed runs were documented to be coalesced into one."""
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)
    # The state the last worker left: its next poll was due at the latest 06:00, which passed
    # while no worker ran.
    missed = current_tick(_trigger("poll-cycle", settings.poll_cron), datetime.now(UTC))
    assert missed is not None
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE apscheduler_jobs SET next_run_time = :t WHERE id = :id"),
                     {"t": missed.timestamp(), "id": "poll-cycle"})
    restarted = build_scheduler(settings)
    restarted.start(paused=True)
    try:
        assert restarted.get_job("poll-cycle").next_run_time == missed  # runs late, once
        assert restarted.get_job("digest").next_run_time > datetime.now(UTC)
    finally:
        restarted.shutdown(wait=False)
    # A changed cron does not fire at the kept slot: the new cron's next time is used.
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE apscheduler_jobs SET next_run_time = :t WHERE id = :id"),
                     {"t": missed.timestamp(), "id": "poll-cycle"})
    changed = build_scheduler(settings.model_copy(update={"poll_cron": "30 5 * * *"}))
    changed.start(paused=True)
    try:
        assert changed.get_job("poll-cycle").next_run_time > datetime.now(UTC)
    finally:
        changed.shutdown(wait=False)



def test_a_more_frequent_cron_is_not_held_to_the_old_crons_next_slot(
        ctx: AppContext, settings: Settings) -> None:
    """Daily changed to hourly: the stored next slot (hours away) is one the
    hourly cron fires at too, and was kept: no poll until then. A future slot comes from the
    new cron; only a passed one is kept (the test above)."""
    later = (datetime.now(UTC).hour + 3) % 24  # the daily slot is 2 to 3 hours away
    daily = settings.model_copy(update={"poll_cron": f"0 {later} * * *"})
    scheduler = build_scheduler(daily)
    scheduler.start(paused=True)
    old_slot = scheduler.get_job("poll-cycle").next_run_time
    scheduler.shutdown(wait=False)
    now = datetime.now(UTC)
    hourly = build_scheduler(settings.model_copy(update={"poll_cron": "0 * * * *"}))
    hourly.start(paused=True)
    try:
        next_hour = hourly.get_job("poll-cycle").next_run_time
        assert next_hour == _trigger("poll-cycle", "0 * * * *").get_next_fire_time(None, now)
        assert old_slot - next_hour >= timedelta(hours=1)
    finally:
        hourly.shutdown(wait=False)


def test_modified_cron_setting(ctx: AppContext, settings: Settings,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.scheduler import default_jobs
    from store.settings import load_settings

    assert default_jobs(settings)["modified-pass"].func == "monitor.poll:scheduled_modified_pass"
    monkeypatch.setenv("MMLR_MODIFIED_CRON", "30 4 * * 3")
    custom = load_settings().model_copy(update={"database_url": settings.database_url})
    assert custom.modified_cron == "30 4 * * 3"
    scheduler = build_scheduler(custom)
    scheduler.start(paused=True)
    job = scheduler.get_job("modified-pass")
    assert job.trigger.get_next_fire_time(None, datetime(2026, 11, 24, tzinfo=UTC)) == \
        datetime(2026, 11, 25, 4, 30, tzinfo=UTC)  # Wednesday
    scheduler.shutdown(wait=False)
    bad = settings.model_copy(update={"modified_cron": "weekly"})
    with pytest.raises(ConfigError, match="MMLR_MODIFIED_CRON 'weekly' is not a valid crontab"):
        build_scheduler(bad)


def test_crontab_days_are_translated() -> None:
    from monitor.scheduler import _crontab_days

    assert _crontab_days("1") == "mon"
    assert _crontab_days("0,7") == "sun,sun"
    assert _crontab_days("1-5/2") == "mon-fri/2"
    assert _crontab_days("*") == "*"


def test_custom_jobs_and_bad_cron(ctx: AppContext, settings: Settings) -> None:
    scheduler = build_scheduler(settings, jobs={
        "nightly": JobSpec(f"{__name__}:scheduled_noop", "30 2 * * *"),
        "digest-extra": scheduled_noop})
    scheduler.start(paused=True)
    assert {j.id for j in scheduler.get_jobs()} >= {"nightly", "digest-extra"}
    scheduler.shutdown(wait=False)
    with pytest.raises(ConfigError, match="MMLR_POLL_CRON 'every day' is not a valid crontab"):
        build_scheduler(settings, jobs={"poll": JobSpec(scheduled_noop,
                                                                       "every day")})
    # a day of week written with a digit that is not ASCII: APScheduler's own words, not
    # "invalid literal for int()" from our translation of crontab's day numbers
    with pytest.raises(ConfigError, match="Unrecognized expression \"²\" for field"):
        build_scheduler(settings, jobs={"poll": JobSpec(scheduled_noop,
                                                                       "0 7 * * ²")})


def test_lock_is_exclusive_and_released(ctx: AppContext) -> None:
    with job_lock(ctx.engine, "poll", ttl=60) as lease:
        with pytest.raises(LockedError, match="'poll' is already running"), \
                job_lock(ctx.engine, "poll", ttl=60):
            pass
        with job_lock(ctx.engine, "digest", ttl=60):  # other names are independent
            pass
        lease.renew()
    with job_lock(ctx.engine, "poll", ttl=60):  # released: can be taken again
        pass


def test_lock_is_exclusive_across_processes(ctx: AppContext, settings: Settings) -> None:
    code = (
        "import sys\n"
        "from store.engine import make_engine\n"
        "from store.locks import job_lock\n"
        "from store.errors import LockedError\n"
        "try:\n"
        "    with job_lock(make_engine(sys.argv[1]), 'poll', ttl=60):\n"
        "        print('acquired')\n"
        "except LockedError as exc:\n"
        "    print('locked:', exc.one_line())\n"
    )
    with job_lock(ctx.engine, "poll", ttl=60):
        out = subprocess.run([sys.executable, "-c", code, settings.db_url], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        assert out.startswith("locked:")
    out = subprocess.run([sys.executable, "-c", code, settings.db_url], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.startswith("acquired")


def test_sqlite_lease_takeover(ctx: AppContext) -> None:
    if ctx.engine.dialect.name != "sqlite":
        pytest.skip("lease rows are the SQLite mechanism (PostgreSQL frees advisory locks "
                    "when the session dies)")
    with ctx.sessions() as session:
        # a live holder elsewhere whose lease is still valid blocks ...
        session.add(JobLock(name="a", holder="otherhost:1:x",
                            expires_at=utcnow() + timedelta(minutes=5)))
        # ... an expired one and a dead process on this host do not
        session.add(JobLock(name="b", holder="otherhost:1:x",
                            expires_at=utcnow() - timedelta(seconds=1)))
        session.add(JobLock(name="c", holder=f"{socket.gethostname()}:999999999:x",
                            expires_at=utcnow() + timedelta(minutes=5)))
        session.commit()
    with pytest.raises(LockedError, match="held by otherhost:1:x"), job_lock(ctx.engine, "a"):
        pass
    for name in ("b", "c"):
        with job_lock(ctx.engine, name):
            pass
    # a pid no process can have (digits not ASCII, twenty of them) is not known dead: its
    # lease blocks until it expires, where it was a ValueError or OverflowError in os.kill
    with ctx.sessions() as session:
        for name, pid in (("d", "²"), ("e", "9" * 20)):
            session.add(JobLock(name=name, holder=f"{socket.gethostname()}:{pid}:x",
                                expires_at=utcnow() + timedelta(minutes=5)))
        session.commit()
    for name in ("d", "e"):
        with pytest.raises(LockedError), job_lock(ctx.engine, name):
            pass


def test_sqlite_lease_of_a_reused_pid_is_taken_over(ctx: AppContext) -> None:
    """A container restarted after a crash runs the worker under the same host name and,
    often, the same pid: the crashed run's lease names a pid that is alive again, as another
    process. The recorded start tells them apart; the same pid with its own start blocks."""
    if ctx.engine.dialect.name != "sqlite":
        pytest.skip("lease rows are the SQLite mechanism")
    if _process_start(os.getpid()) is None:
        pytest.skip("no /proc here to read a process's start from")
    host, pid, start = socket.gethostname(), os.getpid(), _process_start(os.getpid())
    assert _holder().split(":")[:3] == [host, str(pid), start]
    until = utcnow() + timedelta(minutes=5)
    with ctx.sessions() as session:
        session.add(JobLock(name="crashed", holder=f"{host}:{pid}:{start}0:x", expires_at=until))
        session.add(JobLock(name="live", holder=f"{host}:{pid}:{start}:x", expires_at=until))
        session.add(JobLock(name="older", holder=f"{host}:{pid}:x", expires_at=until))
        session.commit()
    with job_lock(ctx.engine, "crashed"):
        pass
    with pytest.raises(LockedError, match="'live' is already running"), \
            job_lock(ctx.engine, "live"):
        pass
    # a lease written before the start was recorded is judged by its (living) pid alone
    with pytest.raises(LockedError, match="'older' is already running"), \
            job_lock(ctx.engine, "older"):
        pass


def test_current_tick_is_the_latest_fire_time_not_after_now() -> None:
    from datetime import UTC, datetime

    from monitor.scheduler import _trigger, current_tick

    now = datetime(2026, 3, 4, 10, 17, 30, tzinfo=UTC)  # a Wednesday
    assert current_tick(_trigger("poll-cycle", "* * * * *"), now) == now.replace(second=0)
    assert current_tick(_trigger("poll-cycle", "*/5 * * * *"), now) == now.replace(
        minute=15, second=0)
    assert current_tick(_trigger("poll-cycle", "0 6 * * *"), now) == now.replace(
        hour=6, minute=0, second=0)
    assert current_tick(_trigger("digest", "0 7 * * 1"), now) == datetime(2026, 3, 2, 7,
                                                                           tzinfo=UTC)
    assert current_tick(_trigger("poll-cycle", "0 0 1 1 *"), now) == datetime(2026, 1, 1,
                                                                              tzinfo=UTC)
    exact = now.replace(minute=15, second=0)  # a tick is its own current tick
    assert current_tick(_trigger("poll-cycle", "*/5 * * * *"), exact) == exact


def test_the_scheduler_builds_before_any_database_file_exists(tmp_path: Path) -> None:
    """A first start reads the job store for slots missed while no worker ran; with no
    database file yet there is none, and nothing is created or refused for it."""
    from monitor.scheduler import build_scheduler, stored_next_runs
    from store.settings import Settings

    missing = tmp_path / "not-yet" / "mmlr.sqlite3"
    assert stored_next_runs(f"sqlite:///{missing}") == {}
    assert not missing.parent.exists()
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{missing}")
    assert build_scheduler(settings).get_jobs()


def test_an_error_of_the_job_store_that_is_no_outage_keeps_apschedulers_line(
        ctx: AppContext, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """The outage filter hides only what it reported: a job table dropped under the running
    scheduler (a bug, not the server going away) is still APScheduler's WARNING."""
    import time

    scheduler = build_scheduler(settings, jobs={})
    scheduler.jobstore_retry_interval = 0.05
    # Paused, its thread does not read the store: the table goes between two of its passes,
    # not in the middle of one (which APScheduler does not survive, outage or not).
    scheduler.start(paused=True)
    try:
        with caplog.at_level(logging.WARNING):
            with ctx.engine.begin() as conn:
                conn.execute(text("DROP TABLE apscheduler_jobs"))
            scheduler.resume()
            for _ in range(400):  # the scheduler works in its own thread
                if "Error getting due jobs" in caplog.text:
                    break
                time.sleep(0.025)
        assert "Error getting due jobs from job store 'default'" in caplog.text
        assert "cannot read its jobs" not in caplog.text
    finally:
        scheduler.shutdown(wait=False)


def test_an_outage_is_logged_when_it_begins_every_ten_minutes_and_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    from monitor.job_store import OutageLog

    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    now = [start]
    outage = OutageLog(clock=lambda: now[0])
    refused = OSError("connection refused\nIs the server running on that host?")
    with caplog.at_level(logging.WARNING, logger="monitor.job_store"):
        for minutes in (0, 4, 9, 10, 15, 21):  # retries: the first and 10 minutes on are told
            now[0] = start + timedelta(minutes=minutes)
            outage.failed(refused)
        now[0] = start + timedelta(minutes=23, seconds=30)
        outage.answered()
        outage.answered()  # no outage: nothing to say
    assert [r.getMessage() for r in caplog.records] == [
        "the scheduler cannot read its jobs, the database is unreachable: connection refused "
        "(a job whose time comes meanwhile runs once it is back)",
        "the database is still unreachable after 10 min: connection refused",
        "the database is still unreachable after 21 min: connection refused",
        # nothing was read before the outage: it may have begun any time before
        "the scheduler reads its jobs again: the database was unreachable for at least 23 min",
    ]
    assert outage.since is None and outage.failures == 0


def test_an_outage_is_bounded_by_the_last_read_answered_before_it(
        caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler reads its jobs only when one is due or a retry comes: PostgreSQL down
    for 50 s was first noticed 30 s in, and the end said "unreachable for 20 s". The outage
    began after the last answered read: both ends are said."""
    from monitor.job_store import OutageLog

    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    now = [start]
    outage = OutageLog(clock=lambda: now[0])
    outage.answered()  # a read before the outage: nothing to say
    with caplog.at_level(logging.WARNING, logger="monitor.job_store"):
        now[0] = start + timedelta(seconds=30)
        outage.failed(OSError("connection refused"))
        now[0] = start + timedelta(seconds=50)
        outage.answered()
        now[0] = start + timedelta(minutes=9)
        outage.failed(OSError("connection refused"))
        now[0] = start + timedelta(minutes=12)
        outage.answered()
    ends = [r.getMessage() for r in caplog.records if "reads its jobs again" in r.getMessage()]
    assert ends == [
        "the scheduler reads its jobs again: the database was unreachable for 20 s to 50 s",
        "the scheduler reads its jobs again: the database was unreachable for 3 min to 11 min",
    ]
