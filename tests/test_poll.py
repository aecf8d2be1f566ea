"""Polling end to end against the real replay server and a real database (SQLite / PostgreSQL).

The scenario corpus has two versions: v1 (first poll) and v2 (a later day: records indexed for
MEDLINE, a retraction, an erratum, a deletion, new records). Every fault and crash test checks
that the database ends up exactly as after a fault-free run of the same scenario.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, cli_env, free_port, stopped
from sqlalchemy import text
from sqlmodel import delete, select

from monitor.entrez import EntrezClient
from monitor.poll import poll, search_window
from monitor.pubmed_xml import iter_records
from monitor.records import ParsedRecord
from monitor.replay_server import (
    ReplayServer,
    start_replay_server,
    synthetic_article,
    write_article_set,
    write_synthetic_corpus,
)
from store.context import AppContext, make_context
from store.errors import LockedError, ValidationError
from store.models import (
    Alert,
    Decision,
    JobLock,
    PollRun,
    Record,
    RecordRevision,
    Trial,
    TrialReport,
)
from store.settings import Settings

TODAY = date.today()  # the scenario's dates count from here (fixed when the module loads)
SINCE = TODAY - timedelta(days=100)


def today() -> date:
    """Today in UTC now, as a poll's window ends: a run crossing midnight polled into the
    next day while TODAY stayed the day the module loaded, and every window check failed."""
    return datetime.now(UTC).date()
MEDLINE_PMIDS = list(range(1000, 1024))


def _day(days_ago: int) -> date:
    return TODAY - timedelta(days=days_ago)


def write_scenario(dest: Path, version: int) -> None:
    """Write corpus version 1 or 2 into ``dest`` (replacing what was there)."""
    if dest.exists():
        shutil.rmtree(dest)
    arts = [synthetic_article(p, created=_day(90 - i)) for i, p in enumerate(MEDLINE_PMIDS)
            if p != 1005]
    if version == 1:
        arts.append(synthetic_article(1005, created=_day(80), status="Publisher"))
        arts.append(synthetic_article(1100, created=_day(60), status="In-Process"))
        arts.append(synthetic_article(1101, created=_day(59), status="Publisher",
                                      title="Maintenance lenalidomide trial (synthetic)"))
        arts.append(synthetic_article(1103, created=_day(58), status="In-Data-Review"))
    else:
        arts.append(synthetic_article(
            1100, created=_day(60), status="MEDLINE", mesh=("Multiple Myeloma", "Lenalidomide"),
            publication_types=("Journal Article", "Randomized Controlled Trial")))
        arts.append(synthetic_article(
            1101, created=_day(59), status="MEDLINE", title="Maintenance lenalidomide trial "
            "(synthetic)", publication_types=("Journal Article", "Retracted Publication"),
            comments=(("RetractionIn", 1102),)))
        arts.append(synthetic_article(1103, created=_day(58), status="MEDLINE",
                                      comments=(("ErratumIn", 1104),)))
        arts.append(synthetic_article(1102, created=_day(1), publication_types=(
            "Retraction of Publication",), comments=(("RetractionOf", 1101),)))
        arts.append(synthetic_article(1200, created=_day(1)))
    write_article_set(dest / "scenario.xml", arts, deleted=(1005,) if version == 2 else ())


def make_settings(tmp_path: Path, db_url: str, url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test", "data_dir": tmp_path / "data", "database_url": db_url,
        "entrez_url": url, "entrez_email": "tests@example.org", "entrez_rate": 500.0,
        "entrez_timeout": 0.3, "entrez_batch_size": 7, "recheck_days": 120,
        "poll_start": SINCE.strftime("%Y/%m/%d"),
    }
    values.update(extra)
    return Settings(**values)


def wipe(ctx: AppContext) -> None:
    with ctx.sessions() as session:
        for model in (Alert, RecordRevision, Decision, Record, PollRun, JobLock, TrialReport,
                      Trial):
            session.exec(delete(model))  # type: ignore[call-overload]
        session.commit()
        trial = Trial(name="SYNTH-1", drug="lenalidomide", setting="post_asct")
        session.add(trial)
        session.flush()
        session.add(TrialReport(trial_id=trial.id, pmid=1101, citation="synthetic"))
        session.commit()


def snapshot(ctx: AppContext, *, runs: bool = True) -> dict[str, Any]:
    """Everything a poll decides, without timestamps or request counts."""
    with ctx.sessions() as session:
        records = sorted(
            (r.pmid, r.content_hash, r.status, r.deleted, r.retracted, r.score, r.flagged,
             r.decision) for r in session.exec(select(Record)))
        revisions = sorted(
            (r.pmid, r.revision, r.content_hash, r.status, tuple(r.changed_fields),
             json.dumps(r.snapshot, sort_keys=True)) for r in session.exec(select(RecordRevision)))
        alerts = sorted((a.kind, a.pmid, a.related_pmid or 0, a.in_analysis, a.message)
                        for a in session.exec(select(Alert)))
        out: dict[str, Any] = {"records": records, "revisions": revisions, "alerts": alerts}
        if runs:
            out["runs"] = sorted(
                (r.kind, r.status, r.window_start, r.window_end, tuple(r.pmids), r.batches_done,
                 tuple(sorted(r.missing)), r.found, r.new, r.updated, r.unchanged, r.deleted,
                 r.retracted) for r in session.exec(select(PollRun)))
    return out


def run_scenario(ctx: AppContext, server: ReplayServer, corpus: Path) -> list[str]:
    """v1 → poll → v2 (+ a score and a decision to keep) → poll; returns the summaries."""
    wipe(ctx)
    write_scenario(corpus, 1)
    server.reload()
    first = poll(ctx, backoff_base=0.001)
    with ctx.sessions() as session:
        rec = session.get(Record, 1100)
        assert rec is not None
        rec.score, rec.flagged = 0.9, True
        gone = session.get(Record, 1005)
        assert gone is not None
        gone.decision = "include"
        session.add(Decision(pmid=1005, decision="include"))
        session.add_all([rec, gone])
        session.commit()
    write_scenario(corpus, 2)
    server.reload()
    second = poll(ctx, backoff_base=0.001)
    return [first.describe(), second.describe()]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    write_scenario(tmp_path / "corpus", 1)
    return tmp_path / "corpus"


@pytest.fixture
def clean_reference(tmp_path: Path, db_url: str, corpus: Path) -> Any:
    """The fault-free scenario's snapshot, and the context (same database) to reuse."""
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        run_scenario(ctx, srv, corpus)
        reference = snapshot(ctx)
    yield ctx, reference
    ctx.dispose()


def test_scenario_outcome_and_rate(tmp_path: Path, db_url: str, corpus: Path) -> None:
    # NCBI's real limit (3/s) on the server and the default client rate (2.7/s).
    with start_replay_server(corpus) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url, entrez_rate=None))
        first, second = run_scenario(ctx, srv, corpus)
        # a third poll with nothing new: one esearch, nothing fetched except rechecks
        third = poll(ctx, backoff_base=0.001)
        assert srv.stats.rate_limited == 0 and srv.stats.max_rate <= 3
    assert third.requests - third.recheck_requests == 1
    assert third.new == 0 and third.updated == 0 and third.found == 2
    assert first.startswith("found 27 / fetched 27 / new 27 / updated 0 / deleted 0 / "
                            "retracted 0; 5 requests (0 retries, 1 window)")
    # v2: the crdt window (last end - 3 days .. today) finds 1102 and 1200; the recheck pass
    # re-fetches the four young records that were not MEDLINE-indexed yet.
    assert second.startswith("found 2 / fetched 6 / new 2 / updated 3 / deleted 1 / "
                             "retracted 1; 3 requests (0 retries, 1 window, 1 for rechecks)")
    snap = snapshot(ctx)
    records = {r[0]: r for r in snap["records"]}
    # the stored hash is the parser's content hash (the poller computes it its own way)
    parsed = {r.pmid: r for r in iter_records(corpus / "scenario.xml")
              if isinstance(r, ParsedRecord)}
    assert all(records[p][1] == rec.content_hash() for p, rec in parsed.items())
    assert records[1100][2] == "MEDLINE" and records[1100][5] is None  # re-scored later
    assert records[1100][6] is False
    assert records[1005][3] is True and records[1005][7] == "include"  # hidden, decision kept
    assert records[1101][4] is True
    with ctx.sessions() as session:
        assert len(session.exec(select(Decision)).all()) == 1
        rev = session.exec(select(RecordRevision).where(RecordRevision.pmid == 1100)).one()
        assert rev.revision == 1 and rev.status == "In-Process"
        assert {"status", "mesh", "publication_types"} <= set(rev.changed_fields)
        assert rev.snapshot["status"] == "In-Process" and rev.snapshot["mesh"] == []
        runs = session.exec(select(PollRun).order_by(PollRun.id)).all()
        assert [r.kind for r in runs] == ["crdt", "crdt", "recheck", "crdt"]
        assert runs[0].window_start == SINCE and runs[0].window_end == runs[0].started_at.date()
        assert runs[1].window_start == runs[0].window_end - timedelta(days=3)
        assert all(r.status == "completed" for r in runs)
    alerts = {(a[0], a[1], a[2]): a[3] for a in snap["alerts"]}
    # 1005 carries a curator's include decision: its deletion concerns the analysis
    assert alerts == {("retraction", 1101, 1102): True, ("erratum", 1103, 1104): False,
                      ("deleted", 1005, 0): True}
    ctx.dispose()


FAULTS = ["429", "500", "503", "timeout", "reset", "truncate", "error200", "slow"]


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_alone_gives_the_same_database(
        tmp_path: Path, clean_reference: Any, corpus: Path, fault: str) -> None:
    ctx, reference = clean_reference
    spec = ",".join(f"{fault}@{n}" for n in (1, 3, 8))  # esearch, an efetch, the 2nd poll
    with start_replay_server(corpus, faults=spec, rate_limit=None, hold_seconds=0.6,
                             slow_seconds=0.05, retry_after=0) as srv:
        fault_ctx = make_context(make_settings(tmp_path, ctx.settings.db_url, srv.url))
        run_scenario(fault_ctx, srv, corpus)
        assert srv.stats.faults == {fault: 3}
        assert snapshot(fault_ctx) == reference
        fault_ctx.dispose()


def test_soak_random_faults(tmp_path: Path, clean_reference: Any, corpus: Path) -> None:
    ctx, reference = clean_reference
    injected = 0
    with start_replay_server(corpus, rate_limit=None, hold_seconds=0.5, retry_after=0) as srv:
        soak_ctx = make_context(make_settings(tmp_path, ctx.settings.db_url, srv.url))
        for seed in range(50):
            srv.set_faults("random:0.25", seed=seed)
            srv.reset_stats()
            run_scenario(soak_ctx, srv, corpus)
            injected += sum(srv.stats.faults.values())
            assert snapshot(soak_ctx) == reference, f"seed {seed}"
        soak_ctx.dispose()
    assert injected > 50  # the soak really injected faults


def test_pmids_mode_records_missing(tmp_path: Path, db_url: str, corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        summary = poll(ctx, pmids=[1000, 99999, 1000, 1100])
        assert (summary.found, summary.fetched, summary.new, summary.missing) == (3, 2, 2, 1)
        with ctx.sessions() as session:
            run = session.exec(select(PollRun)).one()
            assert run.kind == "pmids" and run.missing == [99999] and run.pmids == [1000, 1100,
                                                                                    99999]
        assert srv.stats.requests["esearch"] == 0
        ctx.dispose()


def test_window_over_9999_is_split(tmp_path: Path) -> None:
    write_synthetic_corpus(tmp_path / "big", 10_000, start=date(2025, 1, 1), days=2,
                           per_file=5000)
    with start_replay_server(tmp_path / "big", rate_limit=None) as srv:
        settings = make_settings(tmp_path, "sqlite:///unused.db", srv.url)
        with EntrezClient(settings) as client:
            found = search_window(client, "q", date(2025, 1, 1), date(2025, 1, 2))
        assert found.windows == 3 and len(set(found.ids)) == 10_000 and found.dropped == []
        assert srv.stats.requests["esearch"] == 3


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _cli_env(tmp_path: Path, settings: Settings) -> dict[str, str]:
    return cli_env(MMLR_DATABASE_URL=settings.db_url, MMLR_DATA_DIR=str(tmp_path / "cli"),
                   MMLR_ENTREZ_URL=settings.entrez_url, MMLR_ENTREZ_RATE="500",
                   MMLR_ENTREZ_BATCH_SIZE="4", MMLR_ENTREZ_EMAIL="tests@example.org",
                   MMLR_POLL_START=settings.poll_start, MMLR_RECHECK_DAYS="120")


def _mmlr(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    # SIGINT back to its default first: a suite started in the background (`.ci/run` under
    # nohup, `&`) ignores it, the child inherits that, and Python then installs no Ctrl-C
    # handler, so the SIGINT case would poll on to the end.
    return subprocess.Popen([sys.executable, "-c", "from monitor.cli import entrypoint; "
                             "entrypoint()", *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _advisory_lock_held(ctx: AppContext) -> bool:
    """Whether any session holds an advisory lock in this test's PostgreSQL database (the
    job locks); always False on SQLite, whose leases name their holder's pid instead."""
    if ctx.engine.dialect.name != "postgresql":
        return False
    with ctx.engine.connect() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).scalar())


def _batches_done(ctx: AppContext) -> int:
    with ctx.sessions() as session:
        run = session.exec(select(PollRun)).first()
        return run.batches_done if run else 0


@pytest.mark.parametrize("how", ["sigkill", "sigterm", "sigint"])
def test_crash_then_resume_gives_the_same_database(
        tmp_path: Path, clean_reference: Any, corpus: Path, how: str) -> None:
    ctx, _ = clean_reference
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        settings = make_settings(tmp_path, ctx.settings.db_url, srv.url, entrez_batch_size=4)
        run_ctx = make_context(settings)
        try:  # disposed even on failure: a leaked connection fails a later test
            wipe(run_ctx)
            poll(run_ctx)
            reference = snapshot(run_ctx, runs=False)
            wipe(run_ctx)
            srv.set_delay(0.3)
            proc = _mmlr(["poll"], _cli_env(tmp_path, settings))
            _wait_for(lambda: _batches_done(run_ctx) >= 2)
            proc.send_signal({"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM,
                              "sigint": signal.SIGINT}[how])
            out, err = proc.communicate(timeout=30)
            with run_ctx.sessions() as session:
                run = session.exec(select(PollRun)).one()
                assert 2 <= run.batches_done < 7, (out, err)
                if how == "sigterm":
                    assert proc.returncode == 0, err
                    assert run.status == "interrupted" and "interrupted" in out
                elif how == "sigint":  # Ctrl-C: at once, but the run says so (not "died")
                    assert proc.returncode == 130, err
                    assert run.status == "interrupted", (out, err)
                    assert run.error == "stopped by Ctrl-C (SIGINT)"
                else:
                    assert proc.returncode == -signal.SIGKILL and run.status == "running"
            srv.set_delay(0)
            # PostgreSQL releases a dead client's advisory lock when its backend notices the
            # closed socket, which takes a moment on a loaded machine; a real resume comes with
            # the next scheduled run, minutes later.
            _wait_for(lambda: not _advisory_lock_held(run_ctx))
            summary = poll(run_ctx, backoff_base=0.001)  # resumes the run, then polls again
            assert summary.resumed == 1
            assert snapshot(run_ctx, runs=False) == reference
            with run_ctx.sessions() as session:
                first = session.exec(select(PollRun).order_by(PollRun.id)).first()
                assert first is not None and first.status == "completed" and first.batches_done == 7
        finally:
            run_ctx.dispose()


def scheduled_poll(tmp: str, db_url: str, url: str) -> None:
    """A scheduler job (stored by reference) polling in a scheduler thread, as the worker's."""
    ctx = make_context(make_settings(Path(tmp), db_url, url, entrez_batch_size=4,
                                     entrez_timeout=5.0))
    try:
        poll(ctx)
    finally:
        ctx.dispose()


def test_stopping_the_worker_stops_its_poll_after_the_batch(
        tmp_path: Path, db_url: str, corpus: Path) -> None:
    # SIGTERM to `mmlr worker` (and `mmlr serve` once its web app stopped) shuts the
    # scheduler down: a poll in its thread must checkpoint and stop, not fetch every batch.
    from monitor.scheduler import build_scheduler
    from monitor.service import stop_scheduler

    with start_replay_server(corpus, rate_limit=None, delay=0.2) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url, entrez_batch_size=4,
                                         entrez_timeout=5.0))
        try:
            sched = build_scheduler(ctx.settings, jobs={})
            sched.add_job(scheduled_poll, args=[str(tmp_path), db_url, srv.url], id="poll-now")
            sched.start()
            _wait_for(lambda: _batches_done(ctx) >= 2)
            stop_scheduler(sched)
            with ctx.sessions() as session:
                run = session.exec(select(PollRun)).one()
            assert run.status == "interrupted" and 2 <= run.batches_done < 7
            srv.set_delay(0)
            summary = poll(ctx, backoff_base=0.001)  # the next run resumes it
            assert summary.resumed == 1 and not summary.interrupted
        finally:
            ctx.dispose()


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_sigterm_to_a_service_stops_its_scheduled_poll_after_the_batch(
        tmp_path: Path, db_url: str, corpus: Path, command: str) -> None:
    """The whole service, as systemd or Docker stops it. `serve` used to end at the SIGTERM
    uvicorn raises again after its own shutdown (exit -15), before its scheduler could wait:
    a scheduled poll was cut mid-batch and left "running"."""
    from monitor.scheduler import build_scheduler

    with start_replay_server(corpus, rate_limit=None, delay=0.3) as srv:
        settings = make_settings(tmp_path, db_url, srv.url, entrez_batch_size=4,
                                 poll_cron="* * * * *")
        ctx = make_context(settings)
        try:
            # The job store as a stopped worker left it, its poll due at the minute that has
            # just begun: a service that starts runs it at once (late, within the grace).
            stored = build_scheduler(settings)
            stored.start(paused=True)
            stored.shutdown(wait=False)
            due = datetime.now(UTC).replace(second=0, microsecond=0)
            with ctx.engine.begin() as conn:
                conn.execute(text("UPDATE apscheduler_jobs SET next_run_time = :t "
                                  "WHERE id = 'poll-cycle'"), {"t": due.timestamp()})
            args = [command] + (["--port", str(free_port())] if command == "serve" else [])
            proc = _mmlr(args, _cli_env(tmp_path, settings) | {"MMLR_POLL_CRON": "* * * * *"})
            try:
                _wait_for(lambda: _batches_done(ctx) >= 1, timeout=120)
            finally:
                proc.terminate()
                out, err = stopped(proc)
            assert proc.returncode == 0, err
            with ctx.sessions() as session:
                run = session.exec(select(PollRun)).one()
            assert run.status == "interrupted" and 1 <= run.batches_done < 7, (out, err)
        finally:
            ctx.dispose()


def test_two_workers_poll_once(tmp_path: Path, db_url: str, corpus: Path) -> None:
    with start_replay_server(corpus, rate_limit=None, delay=0.2) as srv:
        settings = make_settings(tmp_path, db_url, srv.url)
        contexts = [make_context(settings), make_context(settings)]
        barrier = threading.Barrier(2)
        results: list[Any] = [None, None]

        def worker(i: int) -> None:
            barrier.wait()
            try:
                results[i] = poll(contexts[i]).new
            except LockedError as exc:
                results[i] = exc

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(type(r).__name__ for r in results) == ["LockedError", "int"]
        assert 27 in results
        locked = next(r for r in results if isinstance(r, LockedError))
        assert "already running" in locked.one_line()
        assert srv.stats.requests["esearch"] == 1
        with contexts[0].sessions() as session:
            assert len(session.exec(select(PollRun)).all()) == 1
            assert session.exec(select(JobLock)).first() is None  # released
        for c in contexts:
            c.dispose()


def _take_the_poll_lock_over(ctx: AppContext, other: AppContext) -> Any:
    """Make another worker the poll lock's holder while the first still runs, as after a
    PostgreSQL restart (the advisory lock ended with its connection) or, on SQLite, an
    expired lease taken over. Returns what holds it (closed by the caller)."""
    if ctx.engine.dialect.name != "postgresql":
        with ctx.engine.begin() as conn:
            conn.execute(text("UPDATE job_locks SET holder = 'elsewhere:1::other', "
                              "expires_at = :until WHERE name = 'poll'"),
                         {"until": datetime.now(UTC) + timedelta(hours=1)})
        return None
    with ctx.engine.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND "
            "granted AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"))
    _wait_for(lambda: not _advisory_lock_held(ctx))
    from store.locks import job_lock

    holder = job_lock(other.engine, "poll")
    holder.__enter__()
    return holder


def test_a_poll_that_lost_its_lock_stores_no_further_batch(
        tmp_path: Path, db_url: str, corpus: Path) -> None:
    """Before: the lock was checked after each batch was stored, so the batch fetched while
    another worker took the lock over was stored all the same (and by that worker too, which
    resumed the run): the run's counters counted it twice. Now the batch's own transaction
    checks the lock, and a poll that lost it writes nothing more."""
    from store.errors import MmlrError

    with start_replay_server(corpus, rate_limit=None, delay=1.0) as srv:
        settings = make_settings(tmp_path, db_url, srv.url, entrez_batch_size=4,
                                 entrez_timeout=5.0)
        ctx, other = make_context(settings), make_context(settings)
        outcome: list[BaseException | None] = []

        def first_worker() -> None:
            try:
                poll(ctx, backoff_base=0.001)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=first_worker)
        holder = None
        try:
            thread.start()
            _wait_for(lambda: _batches_done(ctx) >= 1)
            time.sleep(0.3)  # the first worker is fetching its next batch (1 s per answer)
            holder = _take_the_poll_lock_over(ctx, other)
            with ctx.sessions() as session:
                before = session.exec(select(PollRun)).one()
            thread.join(timeout=60)
            assert not thread.is_alive()
            assert isinstance(outcome[0], MmlrError), outcome
            assert "lost the lock 'poll'" in outcome[0].one_line()
            with ctx.sessions() as session:
                after = session.exec(select(PollRun)).one()
                stored = len(session.exec(select(Record)).all())
            assert after.batches_done == before.batches_done
            assert (after.fetched, after.new, after.status) == (
                before.fetched, before.new, before.status)
            assert stored == before.new
        finally:
            if holder is not None:
                holder.__exit__(None, None, None)
            thread.join(timeout=60)
            ctx.dispose()
            other.dispose()


def test_renewing_a_lock_taken_over_says_it_is_lost(tmp_path: Path, db_url: str) -> None:
    """A digest delivery renews its lease between recipients: on SQLite renew() extended a
    lease another process had taken over without a word (only PostgreSQL said so)."""
    from store.errors import MmlrError
    from store.locks import job_lock

    settings = make_settings(tmp_path, db_url, "http://127.0.0.1:9/")
    ctx, other = make_context(settings), make_context(settings)
    holder = None
    try:
        with job_lock(ctx.engine, "poll") as lease:
            lease.renew()  # held: nothing to say
            holder = _take_the_poll_lock_over(ctx, other)
            with pytest.raises(MmlrError, match="lost the lock 'poll'"):
                lease.renew()
    finally:
        if holder is not None:
            holder.__exit__(None, None, None)
        ctx.dispose()
        other.dispose()


def test_a_resumed_run_is_running_again_while_it_is_fetched(
        tmp_path: Path, db_url: str, corpus: Path) -> None:
    """Before: a run stopped by SIGTERM kept status "interrupted" and its error while the
    next poll resumed it, so `mmlr status` said it had been interrupted (exit 1) while a live
    poll holding the lock fetched it. Resuming sets it running with no error."""
    from monitor.status import gather_status

    with start_replay_server(corpus, rate_limit=None) as srv:
        settings = make_settings(tmp_path, db_url, srv.url, entrez_batch_size=4,
                                 entrez_timeout=5.0)
        ctx = make_context(settings)
        thread = threading.Thread(target=poll, args=(ctx,), kwargs={"backoff_base": 0.001})
        try:
            stopped_early = threading.Event()
            stopped_early.set()  # as SIGTERM does: stop after the first batch
            assert poll(ctx, backoff_base=0.001, stop=stopped_early).interrupted
            with ctx.sessions() as session:
                run = session.exec(select(PollRun)).one()
            assert (run.status, run.error, run.batches_done) == (
                "interrupted", "stopped when the process was asked to stop (SIGTERM or Ctrl-C); "
                "the next poll resumes it", 1)
            srv.set_delay(0.5)
            thread.start()
            _wait_for(lambda: _batches_done(ctx) >= 2)
            with ctx.sessions() as session:
                run = session.exec(select(PollRun)).one()
            assert (run.status, run.error) == ("running", None)
            report = gather_status(settings)
            assert report.sections["poll"]["newest_run"]["status"] == "running"
            assert not [p for p in report.problems if "poll run" in p], report.problems
        finally:
            srv.set_delay(0)
            if thread.is_alive():
                thread.join(timeout=60)
            ctx.dispose()


def test_cli_unreachable_entrez_is_one_line(tmp_path: Path, settings: Settings) -> None:
    make_context(settings).dispose()
    env = _cli_env(tmp_path, settings)
    env["MMLR_ENTREZ_URL"] = "http://127.0.0.1:9/entrez/eutils/"
    env["MMLR_ENTREZ_MAX_RETRIES"] = "1"
    proc = _mmlr(["poll"], env)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "mmlr: error: cannot reach E-utilities at http://127.0.0.1:9/entrez/eutils/: ")
    assert "Traceback" not in err


# ---------------------------------------------------------------------------- modified pass
#: MEDLINE records created two months ago; 2000 is a trial report in an analysis, 2001 a
#: record a curator included, 2003 and the bulk ones plain.
MOD_OLD = _day(60)
MOD_BULK = list(range(3000, 3018))


def write_modified_scenario(dest: Path, version: int, *, bulk: bool = False) -> None:
    """v1: everything MEDLINE and untouched since creation. v2: PubMed changed some of them
    yesterday (retraction, erratum, expression of concern) and a two-month-old record now
    matches the query (MeSH added): only ``[mdat]`` can find any of this."""
    if dest.exists():
        shutil.rmtree(dest)
    changed = _day(1) if version == 2 else None
    arts = [
        synthetic_article(2000, created=MOD_OLD, title="Lenalidomide maintenance RCT (synthetic)",
                          revised=changed, publication_types=(
                              ("Journal Article", "Retracted Publication") if changed
                              else ("Journal Article",)),
                          comments=(("RetractionIn", 2100),) if changed else ()),
        synthetic_article(2001, created=MOD_OLD, revised=changed,
                          comments=(("ErratumIn", 2101),) if changed else ()),
        synthetic_article(2002, created=MOD_OLD),
        synthetic_article(2003, created=MOD_OLD, revised=changed,
                          comments=(("ExpressionOfConcernIn", 2102),) if changed else ()),
    ]
    if changed:
        arts.append(synthetic_article(2050, created=MOD_OLD, revised=changed,
                                      mesh=("Multiple Myeloma",)))
    if bulk:
        arts.extend(synthetic_article(p, created=MOD_OLD, revised=changed,
                                      mesh=("Multiple Myeloma",) if changed else ())
                    for p in MOD_BULK)
    write_article_set(dest / "modified.xml", arts)


def modified_setup(ctx: AppContext) -> None:
    """Store v1 by a crdt poll, then put 2000 in an analysis and include 2001."""
    wipe(ctx)
    with ctx.sessions() as session:
        report = session.exec(select(TrialReport)).one()
        report.pmid = 2000
        session.add(report)
        session.commit()
    poll(ctx, backoff_base=0.001)
    with ctx.sessions() as session:
        rec = session.get(Record, 2001)
        assert rec is not None and rec.status == "MEDLINE"
        rec.decision = "include"
        session.add(rec)
        session.add(Decision(pmid=2001, decision="include"))
        session.commit()


def mod_settings(tmp_path: Path, db_url: str, url: str, **extra: Any) -> Settings:
    # recheck_days 30: the first modified window (30 days back) does not reach the records'
    # creation two months ago.
    return make_settings(tmp_path, db_url, url, recheck_days=30, **extra)


def test_modified_pass_sees_retraction_erratum_and_concern(tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "mod"
    write_modified_scenario(corpus, 1)
    with start_replay_server(corpus) as srv:  # NCBI's 3/s limit, the default client rate
        ctx = make_context(mod_settings(tmp_path, db_url, srv.url, entrez_rate=None))
        modified_setup(ctx)
        # Nothing modified in the window: the pass costs its one esearch, plus one efetch of
        # the watched PMIDs (trial report 2000, included 2001), which come back unchanged.
        srv.reset_stats()
        quiet = poll(ctx, modified=True, backoff_base=0.001)
        assert (quiet.found, quiet.fetched, quiet.unchanged, quiet.requests) == (0, 2, 2, 2)
        assert quiet.watched_requests == 1
        assert srv.stats.requests == {"esearch": 1, "efetch": 1}
        term = srv.stats.params[0]["term"][0]
        end = today()
        assert term.endswith(f"{end - timedelta(days=30):%Y/%m/%d}:{end:%Y/%m/%d}[mdat]")
        assert srv.stats.params[1]["id"] == ["2000,2001"]

        write_modified_scenario(corpus, 2)
        srv.reload()
        # The crdt pass alone cannot see it: the records are MEDLINE-final and old.
        srv.reset_stats()
        crdt = poll(ctx, backoff_base=0.001)
        assert (crdt.found, crdt.fetched, crdt.requests) == (0, 0, 1)
        with ctx.sessions() as session:
            assert session.exec(select(Alert)).all() == []
            rec = session.get(Record, 2000)
            assert rec is not None and rec.retracted is False
            assert session.get(Record, 2050) is None

        srv.reset_stats()
        summary = poll(ctx, modified=True, backoff_base=0.001)
        assert srv.stats.rate_limited == 0 and srv.stats.max_rate <= 3
        # window: last modified end - 3 days .. today; 2002 was not modified
        assert summary.describe().startswith(
            "found 4 / fetched 4 / new 1 / updated 3 / deleted 0 / retracted 1; 2 requests "
            "(0 retries, 1 window)")
        assert srv.stats.requests == {"esearch": 1, "efetch": 1}
        assert summary.watched_requests == 0  # the search found both watched PMIDs
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "modified")
                               .order_by(col_id_desc())).first()
            assert run is not None and run.status == "completed"
            assert run.window_end == run.started_at.date()
            assert run.window_start == run.window_end - timedelta(days=3)
            assert run.pmids == [2000, 2001, 2003, 2050] and run.query == ctx.settings.query
            retracted = session.get(Record, 2000)
            assert retracted is not None and retracted.retracted is True
            assert "Retracted Publication" in retracted.publication_types
            assert retracted.score is None  # re-scored by the active model
            revisions = {r.pmid: r for r in session.exec(select(RecordRevision))}
            assert sorted(revisions) == [2000, 2001, 2003]
            assert "publication_types" in revisions[2000].changed_fields
            assert revisions[2000].poll_run_id == run.id
            assert revisions[2001].changed_fields == ["comments_corrections"]
            included = session.get(Record, 2001)
            assert included is not None and included.decision == "include"  # curator work kept
            alerts = {(a.kind, a.pmid, a.related_pmid): a.in_analysis
                      for a in session.exec(select(Alert))}
        assert alerts == {("retraction", 2000, 2100): True, ("erratum", 2001, 2101): True,
                          ("expression_of_concern", 2003, 2102): False}
        before = snapshot(ctx, runs=False)

        # Again with nothing new: the overlap days are searched again, their records come
        # back unchanged, and nothing is stored twice or alerted twice.
        again = poll(ctx, modified=True, backoff_base=0.001)
        assert (again.found, again.unchanged, again.updated, again.new) == (4, 4, 0, 0)
        assert snapshot(ctx, runs=False) == before
        ctx.dispose()


def col_id_desc() -> Any:
    from sqlmodel import col

    return col(PollRun.id).desc()


def test_modified_backfill_skips_records_fetched_after_the_window(
        tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "mod"
    write_modified_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(mod_settings(tmp_path, db_url, srv.url))
        modified_setup(ctx)
        # A back-fill over the creation days: every record found was fetched (today) long
        # after that window closed, so its stored version is current.
        srv.reset_stats()
        old = poll(ctx, modified=True, since=_day(70), until=_day(50), backoff_base=0.001)
        assert (old.found, old.fetched, old.requests) == (4, 0, 1)
        # A per-PMID mdat override (the replay server's test hook) puts 2002 in today's window;
        # a window reaching today also re-fetches the watched 2000 and 2001 (the back-fill
        # above did not).
        srv.set_modified({2002: TODAY})
        recent = poll(ctx, modified=True, since=_day(2), backoff_base=0.001)
        assert (recent.found, recent.fetched, recent.unchanged) == (1, 3, 3)
        assert (old.watched_requests, recent.watched_requests) == (0, 1)
        srv.set_modified(None)
        ctx.dispose()


def test_modified_and_pmids_cannot_be_combined(tmp_path: Path, db_url: str) -> None:
    ctx = make_context(mod_settings(tmp_path, db_url, "http://127.0.0.1:9/entrez/eutils/"))
    with pytest.raises(ValidationError, match="cannot be combined"):
        poll(ctx, modified=True, pmids=[1])
    ctx.dispose()


def _modified_batches_done(ctx: AppContext) -> int:
    with ctx.sessions() as session:
        run = session.exec(select(PollRun).where(PollRun.kind == "modified")).first()
        return run.batches_done if run else 0


def test_modified_run_killed_then_resumed_gives_the_same_database(
        tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "mod"
    with start_replay_server(tmp_path, rate_limit=None) as srv:
        settings = mod_settings(tmp_path, db_url, srv.url, entrez_batch_size=4)
        ctx = make_context(settings)

        def prepare() -> None:
            write_modified_scenario(corpus, 1, bulk=True)
            srv.reload(corpus)
            modified_setup(ctx)
            write_modified_scenario(corpus, 2, bulk=True)
            srv.reload()

        prepare()
        poll(ctx, modified=True, backoff_base=0.001)
        reference = snapshot(ctx, runs=False)
        assert len(reference["revisions"]) == 3 + len(MOD_BULK)

        prepare()
        srv.set_delay(0.3)
        proc = _mmlr(["poll", "--modified"], _cli_env(tmp_path, settings) | {
            "MMLR_RECHECK_DAYS": "30"})
        _wait_for(lambda: _modified_batches_done(ctx) >= 2)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, (out, err)
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "modified")).one()
            total = -(-len(run.pmids) // 4)
            assert run.status == "running" and 2 <= run.batches_done < total
        srv.set_delay(0)
        srv.reset_stats()
        summary = poll(ctx, backoff_base=0.001)  # any poll resumes the unfinished run first
        assert summary.resumed == 1
        assert snapshot(ctx, runs=False) == reference
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "modified")).one()
            assert run.status == "completed" and run.batches_done == total
        ctx.dispose()
