"""``mmlr status``: the operator's read-only health report and its exit code, driven through
the real CLI on a real database (SQLite file, or PostgreSQL with MMLR_TEST_DATABASE_URL).

States come from real polls against the replay server and a real ``mmlr digest`` where that
is cheap; the states a test cannot wait for (a poll finished three days ago, a process that
died mid-poll) are rows written as the poll writes them, with their times moved back."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PG_URL, ROOT, assert_one_line_error, cli_env, run_cli
from sqlalchemy import inspect
from sqlmodel import delete, select
from test_poll import SINCE, make_settings, write_scenario

from monitor.cli import build_parser
from monitor.poll import poll
from monitor.replay_server import start_replay_server
from store.context import AppContext, make_context
from store.engine import make_engine, schema_revisions
from store.errors import EntrezError
from store.locks import job_lock
from store.models import (
    Alert,
    Decision,
    Delivery,
    Digest,
    JobLock,
    PollRun,
    Record,
    User,
    utcnow,
)
from store.settings import Settings

TOP_KEYS = {"healthy", "problems", "checked_at", "database", "schema", "poll", "digest",
            "screening", "pooling", "locks", "alerts"}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return cli_env(MMLR_DATA_DIR=str(settings.data_dir), MMLR_DATABASE_URL=settings.db_url,
                   **extra)


def status(settings: Settings, *args: str, process: bool = False,
           **extra: str) -> subprocess.CompletedProcess[str]:
    """`mmlr status *args` (``process``: in a process of its own, see ``run_cli``);
    ``extra``: more settings for its environment."""
    return run_cli("status", *args, env=_env(settings, **extra), process=process)


def status_json(settings: Settings, *, process: bool = False,
                **extra: str) -> tuple[int, dict[str, Any], str]:
    proc = status(settings, "--json", process=process, **extra)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def attention_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of an unhealthy report (exit 1, no traceback)."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mmlr: attention: "), proc.stderr
    return lines[0]


@pytest.fixture
def polled(tmp_path: Path, db_url: str) -> Any:
    """A database after one real, completed poll of the replay corpus (create dates from
    SINCE), and the corpus folder."""
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        poll(ctx, backoff_base=0.001)
        yield ctx, corpus
        ctx.dispose()


def _digest_with(ctx: AppContext, *deliveries: Delivery) -> int:
    """A digest with these deliveries; their recipients are subscribed (if not already):
    a failure counts only for someone the next digest still goes to."""
    from store.subscribers import add_subscriber, find_subscriber

    with ctx.sessions() as session:
        digest = Digest(html="<p>x</p>", text="x", subject="digest")
        session.add(digest)
        session.flush()
        for row in deliveries:
            row.digest_id = int(digest.id or 0)
            session.add(row)
            if row.recipient and find_subscriber(session, row.recipient) is None:
                add_subscriber(session, row.recipient, actor="test")
        session.commit()
        return int(digest.id or 0)


def _move_back(ctx: AppContext, run_id: int, delta: timedelta, **values: Any) -> None:
    with ctx.sessions() as session:
        run = session.get(PollRun, run_id)
        assert run is not None
        run.started_at -= delta
        run.heartbeat_at -= delta
        if run.finished_at is not None:
            run.finished_at -= delta
        for name, value in values.items():
            setattr(run, name, value)
        session.add(run)
        session.commit()


def _only_run(ctx: AppContext) -> PollRun:
    with ctx.sessions() as session:
        return session.exec(select(PollRun).where(PollRun.kind == "crdt")).one()


# ----------------------------------------------------------------------------- states
def test_a_fresh_database_waits_for_its_first_poll(ctx: AppContext) -> None:
    """Initialised, never polled: healthy while its first MMLR_POLL_CRON slot is due, with the
    rest of the report in place; past the stale limit, counted from when it was set up, the
    missing first search needs attention."""
    from store.models import User

    with ctx.sessions() as session:  # what `mmlr init` leaves: the first admin
        session.add(User(email="admin@example.org", role="admin", password_hash="x"))
        session.commit()
    proc = status(ctx.settings)
    assert proc.returncode == 0, proc.stderr
    assert "none completed (the first is due at the next MMLR_POLL_CRON slot)" in proc.stdout
    assert "schema" in proc.stdout and "locks" in proc.stdout
    code, report, _ = status_json(ctx.settings)
    assert code == 0 and report["healthy"] is True
    assert report["schema"]["at_head"] is True
    assert report["poll"]["last_completed_at"] is None
    assert report["poll"]["first_search_pending"] is True
    assert report["poll"]["newest_run"] is None
    assert report["digest"]["id"] is None
    assert report["locks"] == []

    with ctx.sessions() as session:  # set up three days ago, never polled: overdue
        admin = session.exec(select(User)).one()
        admin.created_at = utcnow() - timedelta(days=3)
        session.add(admin)
        session.commit()
    line = attention_line(status(ctx.settings))
    assert "no search of new records has completed since mmlr was set up on" in line
    assert "more than 2 days" in line


def test_a_completed_poll_and_delivered_digest_are_healthy(polled: Any) -> None:
    ctx, _ = polled
    sent = run_cli("digest", env=_env(ctx.settings))  # the real digest, to the outbox
    assert sent.returncode == 0, sent.stderr
    proc = status(ctx.settings)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[-1].split() == ["status", "ok"]
    # An aligned table: every value starts in the same column.
    lines = proc.stdout.splitlines()
    column = lines[-1].index("ok")
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in lines)
    # In words: the run's kind (its code for whoever knows PubMed's fields), no bare zero.
    run_line = next(line for line in lines if line.startswith("newest poll run"))
    assert "(search by create date, crdt) completed, started" in run_line
    assert [line.split(None, 3)[3] for line in lines if line.startswith("alerts in use")] \
        == ["none"]
    with ctx.sessions() as session:
        session.add(Alert(kind="retraction", pmid=12345678, message="retracted",
                          in_analysis=True))
        session.commit()
    alerted = status(ctx.settings).stdout.splitlines()
    assert [line.split(None, 3)[3] for line in alerted if line.startswith("alerts in use")] \
        == ["1 on records in the evidence, 1 not yet in a digest; retraction PMID 12345678"]
    with ctx.sessions() as session:  # the healthy report below is about the poll and digest
        session.execute(delete(Alert))
        session.commit()
    code, report, _ = status_json(ctx.settings)
    assert code == 0 and report["healthy"] is True and report["problems"] == []
    assert set(report) == TOP_KEYS
    run = _only_run(ctx)
    poll_section = report["poll"]
    assert poll_section["found"] == run.found > 0
    assert poll_section["window_start"] == SINCE.isoformat()
    assert poll_section["window_end"] == run.window_end.isoformat()  # type: ignore[union-attr]
    assert poll_section["newest_run"]["status"] == "completed"
    assert report["digest"]["sent"] == 1 and report["digest"]["failed"] == 0
    assert report["screening"]["awaiting_screening"] == run.new
    assert report["screening"]["unscored"] == run.new  # nothing screened yet


def test_json_keys_are_stable(polled: Any) -> None:
    ctx, _ = polled
    _, report, _ = status_json(ctx.settings)
    assert set(report) == TOP_KEYS
    assert set(report["database"]) == {"engine", "url", "reachable", "error"}
    assert set(report["schema"]) == {"current", "expected", "at_head"}
    assert set(report["poll"]) == {"last_completed_at", "window_start", "window_end", "found",
                                   "new", "updated", "dropped_terms", "stale_after_hours",
                                   "stale",
                                   "first_search_pending", "newest_run"}
    assert set(report["poll"]["newest_run"]) == {"id", "kind", "status", "started_at",
                                                 "heartbeat_at", "error"}
    assert set(report["digest"]) == {"id", "built_at", "sent", "failed", "unknown", "pending",
                                     "no_longer_recipients", "errors"}
    assert set(report["screening"]) == {"model_version", "model_trained_at", "unscored",
                                        "awaiting_screening", "awaiting_second_vote",
                                        "in_conflict", "may_stop", "stopping_test"}
    assert set(report["pooling"]) == {"last_pooled_at", "analyses_with_pending_changes",
                                      "error"}
    assert set(report["alerts"]) == {"in_use", "in_use_not_in_a_digest", "newest"}
    assert report["database"]["engine"] == ("postgresql" if PG_URL else "sqlite")
    # The default MMLR_POLL_CRON fires daily: two missed days make a poll stale.
    assert report["poll"]["stale_after_hours"] == 48


def test_a_failed_newest_poll_needs_attention(polled: Any) -> None:
    """A real poll that stops on a server error (no retries allowed) leaves its run
    interrupted: exit 1, and the line names the run and the error."""
    ctx, corpus = polled
    with start_replay_server(corpus, faults="500@1,500@2", rate_limit=None) as srv:
        failing = make_context(make_settings(ctx.settings.data_dir.parent,
                                             ctx.settings.db_url, srv.url,
                                             entrez_max_retries=0))
        try:
            with pytest.raises(EntrezError):
                poll(failing, backoff_base=0.001, pmids=[1000, 1001])
        finally:
            failing.dispose()
    proc = status(ctx.settings)
    line = attention_line(proc)
    with ctx.sessions() as session:
        newest = session.exec(select(PollRun).order_by(PollRun.id.desc())).first()  # type: ignore[union-attr]
    assert newest is not None and newest.status in ("failed", "interrupted")
    assert f"the newest poll run #{newest.id} (pmids) {newest.status}" in line
    assert "500" in line
    _, report, _ = status_json(ctx.settings)
    assert report["poll"]["newest_run"]["id"] == newest.id
    assert report["poll"]["newest_run"]["error"]
    # The last *completed* search is still reported, and is not stale.
    assert report["poll"]["last_completed_at"] is not None and report["poll"]["stale"] is False


def test_a_poll_older_than_twice_the_cron_gap_is_stale(polled: Any) -> None:
    ctx, _ = polled
    run = _only_run(ctx)
    _move_back(ctx, int(run.id or 0), timedelta(days=3))
    line = attention_line(status(ctx.settings))
    assert "no search of new records has completed since" in line
    assert "more than 2 days" in line and "MMLR_POLL_CRON '0 6 * * *'" in line
    # The window follows the cron: a weekly poll three days ago is on time.
    proc = status(ctx.settings, MMLR_POLL_CRON="0 6 * * 1")
    assert proc.returncode == 0, proc.stderr
    _, report, _ = status_json(ctx.settings, MMLR_POLL_CRON="0 6 * * 1")
    assert report["poll"]["stale_after_hours"] == 14 * 24 and report["poll"]["stale"] is False


def _a_poll_left_running(ctx: Any) -> int:
    """The completed poll moved earlier in the day, then a run that started and is still
    marked running (its process died, or is at work): its id."""
    _move_back(ctx, int(_only_run(ctx).id or 0), timedelta(hours=3))
    with ctx.sessions() as session:
        run = PollRun(kind="crdt", status="running", query="q", pmids=[1, 2, 3])
        session.add(run)
        session.commit()
        return int(run.id or 0)


def test_a_poll_that_stopped_checkpointing_is_stale(polled: Any) -> None:
    """A run still marked running whose heartbeat is older than the poll's lease: its
    process died (SIGKILL, a lost container)."""
    ctx, _ = polled
    dead_id = _a_poll_left_running(ctx)
    with job_lock(ctx.engine, "poll"):  # just started, its process alive: a poll at work
        fresh = status(ctx.settings)
    assert fresh.returncode == 0, fresh.stderr
    _move_back(ctx, dead_id, timedelta(hours=1))
    line = attention_line(status(ctx.settings))
    assert f"poll run #{dead_id} (crdt) says running but has not progressed" in line
    _, report, _ = status_json(ctx.settings)
    assert report["poll"]["newest_run"]["status"] == "stale"


def test_a_running_poll_whose_process_died_is_stale_at_once(polled: Any) -> None:
    """A worker SIGKILLed mid-poll leaves its run marked running with a fresh heartbeat. No
    live process holds the poll lock (PostgreSQL freed it with the connection; a SQLite lease
    of a dead process is orphaned): the status says so at once, not after the 15-minute
    lease, while the other worker would only resume it at its next tick."""
    ctx, _ = polled
    dead_id = _a_poll_left_running(ctx)
    line = attention_line(status(ctx.settings))
    assert f"poll run #{dead_id} (crdt) says running but no process holds the poll lock" \
        in line
    _, report, _ = status_json(ctx.settings)
    assert report["poll"]["newest_run"]["status"] == "stale"
    assert report["locks"] == []


def test_a_failed_delivery_needs_attention_until_retried(polled: Any) -> None:
    ctx, _ = polled
    digest_id = _digest_with(
        ctx,
        Delivery(channel="smtp", recipient="a@example.org", status="sent", sent_at=utcnow()),
        Delivery(channel="smtp", recipient="b@example.org", status="failed", attempts=3,
                 error="SMTP server mail.example.org:587 failed after 3 attempts: refused"))
    line = attention_line(status(ctx.settings))
    assert f"the newest digest #{digest_id} was not delivered to 1 of 2 recipients" in line
    assert "mail.example.org:587" in line
    _, report, _ = status_json(ctx.settings)
    assert report["digest"]["failed"] == 1 and report["digest"]["sent"] == 1
    # `mmlr digest --send` later reached the recipient: a new sent row settles it.
    with ctx.sessions() as session:
        session.add(Delivery(digest_id=digest_id, channel="smtp", recipient="B@example.org",
                             status="sent", sent_at=utcnow()))
        session.commit()
    assert status(ctx.settings).returncode == 0


def test_the_outbox_copy_is_not_counted_as_a_recipient(polled: Any) -> None:
    # `--send` said "reached 2 of 3 recipients"; status said "1 of 4 ... 3 delivered": the
    # outbox copy written before MMLR_SMTP_URL was set counted as a person.
    ctx, _ = polled
    digest_id = _digest_with(
        ctx, Delivery(channel="outbox", status="sent", path="/tmp/outbox/d.html"),
        _sent("a@example.org"), _sent("b@example.org"), _failed("c@example.org"))
    line = attention_line(status(ctx.settings))
    assert f"the newest digest #{digest_id} was not delivered to 1 of 3 recipients" in line
    _, report, _ = status_json(ctx.settings)
    assert (report["digest"]["sent"], report["digest"]["failed"]) == (2, 1)
    assert "2 delivered, 1 failed" in status(ctx.settings).stdout


def _leaves(ctx: AppContext, rcpt: str) -> None:
    from store.subscribers import find_subscriber, set_active

    with ctx.sessions() as session:
        row = find_subscriber(session, rcpt)
        assert row is not None
        set_active(session, row, False, actor="test", via="cli")
        session.commit()


def test_a_failure_for_someone_no_longer_a_recipient_needs_no_attention(polled: Any) -> None:
    # bob's mailbox refused digest #1; he was removed. Status said "was not delivered to 1 of
    # 2 recipients ... (`mmlr digest --send` retries them)" — it sends to current recipients
    # only — and, after later digests reached everyone, "digest #1 was not delivered to 1
    # recipient and no later digest they received carried its changes", for ever.
    ctx, _ = polled
    refused = _failed("bob@example.org")
    refused.error = "recipient refused: 550 5.1.1 no such user"
    first = _digest_with(ctx, refused, _sent("ann@example.org"))
    _since(ctx, first, None)
    line = attention_line(status(ctx.settings))
    assert f"the newest digest #{first} was not delivered to 1 of 2 recipients: recipient " \
        "refused: 550 5.1.1 no such user (`mmlr digest --send` sends it again to the current " \
        "recipients it missed)" in line
    _leaves(ctx, "bob@example.org")
    proc = status(ctx.settings)
    assert proc.returncode == 0, proc.stderr
    assert "1 failed, 0 pending (1 of those not delivered are no longer recipients)" \
        in proc.stdout
    _, report, _ = status_json(ctx.settings)
    assert (report["digest"]["failed"], report["digest"]["no_longer_recipients"]) == (1, 1)
    later = _digest_with(ctx, _sent("ann@example.org"))
    _since(ctx, later, first)
    assert status(ctx.settings).returncode == 0  # the older digest: nothing to carry to bob
    # an address taken out of MMLR_DIGEST_TO is no recipient either; one still in it is
    fixed = _digest_with(ctx, _sent("ann@example.org"),
                         Delivery(channel="smtp", recipient="team@example.org",
                                  status="failed", error="recipient refused: 550 no"))
    _since(ctx, fixed, later)
    _leaves(ctx, "team@example.org")  # _digest_with subscribed it: make it fixed only
    assert status(ctx.settings).returncode == 0
    line = attention_line(status(ctx.settings, MMLR_DIGEST_TO="team@example.org"))
    assert f"the newest digest #{fixed} was not delivered to 1 of 2 recipients" in line


def _sent(rcpt: str) -> Delivery:
    return Delivery(channel="smtp", recipient=rcpt, status="sent", sent_at=utcnow())


def _failed(rcpt: str) -> Delivery:
    return Delivery(channel="smtp", recipient=rcpt, status="failed", attempts=1,
                    error="SMTP server mail.example.org:587 failed after 3 attempts: refused")


def _since(ctx: AppContext, digest_id: int, since: int | None) -> None:
    with ctx.sessions() as session:
        digest = session.get(Digest, digest_id)
        assert digest is not None
        digest.summary = {"since_digest": since}
        session.add(digest)
        session.commit()


def test_an_older_undelivered_digest_counts_only_if_no_later_one_carried_it(
        polled: Any) -> None:
    # A digest that reached nobody is covered by the next one delivered (it counts from the
    # digest before it); one that reached a but not b is not, and b never hears of it. The
    # status looked at the newest digest only and said "ok".
    ctx, _ = polled
    nobody = _digest_with(ctx, _failed("a@example.org"), _failed("b@example.org"))
    _since(ctx, nobody, None)
    covering = _digest_with(ctx, _sent("a@example.org"), _sent("b@example.org"))
    _since(ctx, covering, None)
    assert status(ctx.settings).returncode == 0
    partly = _digest_with(ctx, _sent("a@example.org"), _failed("b@example.org"))
    _since(ctx, partly, covering)
    newest = _digest_with(ctx, _sent("a@example.org"), _sent("b@example.org"))
    _since(ctx, newest, partly)
    line = attention_line(status(ctx.settings))
    assert f"digest #{partly} was not delivered to 1 recipient and no later digest they " \
        "received carried its changes: SMTP server mail.example.org:587" in line
    assert f"#{nobody}" not in line


def test_a_held_lock_is_reported_with_its_holder(polled: Any) -> None:
    """A lock this test process holds, read by `mmlr status` in a process of its own (as an
    operator runs it beside the worker): reported, not a problem (a job at work)."""
    ctx, _ = polled
    with job_lock(ctx.engine, "pool"):
        proc = status(ctx.settings, process=True)
        _, report, _ = status_json(ctx.settings, process=True)
    assert proc.returncode == 0, proc.stderr
    assert [lock["name"] for lock in report["locks"]] == ["pool"]
    lock = report["locks"][0]
    assert lock["orphaned"] is False and lock["holder"]
    assert f"pool by {lock['holder']}" in proc.stdout
    assert status_json(ctx.settings)[1]["locks"] == []  # released


def test_an_orphaned_lease_is_marked(polled: Any) -> None:
    if PG_URL:
        pytest.skip("PostgreSQL's advisory locks end with their session: no lease to orphan")
    ctx, _ = polled
    with ctx.sessions() as session:
        past = utcnow() - timedelta(hours=2)
        session.add(JobLock(name="screen", holder="elsewhere:42:x:abcd", acquired_at=past,
                            expires_at=past + timedelta(hours=1)))
        # A scheduler tick claim is not a lock.
        session.add(JobLock(name="tick:poll-cycle@x", holder="elsewhere:42:x:abcd",
                            expires_at=utcnow() + timedelta(days=1)))
        session.commit()
    proc = status(ctx.settings)
    assert "screen by elsewhere:42:x:abcd" in proc.stdout and "(orphaned)" in proc.stdout
    _, report, _ = status_json(ctx.settings)
    assert [(lk["name"], lk["orphaned"]) for lk in report["locks"]] == [("screen", True)]


def test_several_problems_make_one_line(polled: Any) -> None:
    ctx, _ = polled
    _move_back(ctx, int(_only_run(ctx).id or 0), timedelta(days=3))
    _digest_with(ctx, Delivery(channel="outbox", status="failed", error="cannot write"))
    line = attention_line(status(ctx.settings))
    assert "no search of new records has completed since" in line
    assert line.endswith("(and 1 more: see the report)")
    _, report, _ = status_json(ctx.settings)
    assert len(report["problems"]) == 2 and "cannot write" in report["problems"][1]


def test_a_bad_setting_stops_before_anything_is_read(tmp_path: Path) -> None:
    """The settings check every command does at start."""
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"), MMLR_LOG_LEVEL="LOUD")
    assert_one_line_error(run_cli("status", env=env), "MMLR_LOG_LEVEL")


def test_the_compose_worker_is_checked_with_status() -> None:
    """docker-compose.yml's worker health check runs this command, as the docs say."""
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    assert worker["healthcheck"]["test"] == ["CMD", "mmlr", "status"]
    assert build_parser().parse_args(["status"]).command == "status"


def test_an_invalid_poll_cron_needs_attention(polled: Any) -> None:
    ctx, _ = polled
    line = attention_line(status(ctx.settings, MMLR_POLL_CRON="0 6 31 2 *"))
    assert "MMLR_POLL_CRON" in line and "never fires" in line


@pytest.mark.parametrize(("variable", "cron", "said"), [
    ("MMLR_DIGEST_CRON", "0 6 31 2 *", "never fires"),
    ("MMLR_MODIFIED_CRON", "bad", "is not a valid crontab"),
])
def test_an_invalid_digest_or_modified_cron_needs_attention(polled: Any, variable: str,
                                                             cron: str, said: str) -> None:
    """serve and worker refuse to start with it; status said the installation was healthy."""
    ctx, _ = polled
    line = attention_line(status(ctx.settings, **{variable: cron}))
    assert variable in line and said in line and "will not start" in line


@pytest.mark.parametrize(("content", "said"), [
    ("[[analysis]\nname=", "is not valid TOML"),
    (None, "does not exist"),
])
def test_an_unreadable_analyses_file_needs_attention(polled: Any, content: str | None,
                                                     said: str) -> None:
    """The report is printed with the analyses file marked; before, the command stopped with
    one `mmlr: error:` line and no report."""
    ctx, corpus = polled
    path = corpus.parent / "analyses.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = status(ctx.settings, MMLR_ANALYSES_FILE=str(path))
    line = attention_line(proc)
    assert f"MMLR_ANALYSES_FILE {path}" in line and said in line
    assert "last poll" in proc.stdout and "locks" in proc.stdout
    pool_row = next(row for row in proc.stdout.splitlines() if row.startswith("last pool"))
    assert f"MMLR_ANALYSES_FILE {path}" in pool_row and said in pool_row
    code, report, err = status_json(ctx.settings, MMLR_ANALYSES_FILE=str(path))
    assert code == 1 and err.startswith("mmlr: attention: MMLR_ANALYSES_FILE")
    assert report["healthy"] is False and said in report["problems"][0]
    assert report["pooling"]["analyses_with_pending_changes"] is None
    assert said in report["pooling"]["error"]
    assert report["screening"] is not None and report["alerts"] is not None


# ----------------------------------------------------------------------------- the database
def test_the_password_in_the_database_url_is_masked(tmp_path: Path) -> None:
    """Unreachable PostgreSQL (nothing listens on port 9): one line, exit 1, the report still
    printed, and the password nowhere."""
    secret = "s3cret-Passw0rd"
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"),
                  MMLR_DATABASE_URL=f"postgresql+psycopg://mmlr:{secret}@127.0.0.1:9/mmlr")
    proc = run_cli("status", env=env)
    line = attention_line(proc)
    assert "cannot connect to the database" in line
    assert "postgresql+psycopg://mmlr:***@127.0.0.1:9/mmlr" in proc.stdout
    proc_json = run_cli("status", "--json", env=env)
    report = json.loads(proc_json.stdout)
    assert report["database"] == {"engine": "postgresql",
                                  "url": "postgresql+psycopg://mmlr:***@127.0.0.1:9/mmlr",
                                  "reachable": False, "error": report["database"]["error"]}
    assert report["schema"] is None and report["poll"] is None
    for text in (proc.stdout, proc.stderr, proc_json.stdout, proc_json.stderr):
        assert secret not in text


@pytest.mark.parametrize("query", ["password=S3CRETPW", "sslmode=prefer&sslpassword=S3CRETPW",
                                   "PASSWORD=S3CRETPW&password=S3CRETPW"])
def test_a_password_in_the_query_of_the_database_url_is_masked(
        tmp_path: Path, query: str) -> None:
    """libpq reads ``?password=`` (and ``?sslpassword=``) from the query too. Before, only
    the ``user:pass@`` part was masked: status, --json and the connection error printed the
    query's password in clear."""
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"),
                  MMLR_DATABASE_URL=f"postgresql://mmlr@127.0.0.1:9/mmlr?{query}")
    proc = run_cli("status", env=env)
    line = attention_line(proc)
    assert "cannot connect to the database postgresql+psycopg://mmlr@127.0.0.1:9/mmlr?" in line
    assert "=***" in line
    proc_json = run_cli("status", "--json", env=env)
    report = json.loads(proc_json.stdout)
    assert report["database"]["url"].startswith("postgresql+psycopg://mmlr@127.0.0.1:9/mmlr?")
    assert report["database"]["reachable"] is False
    for text in (proc.stdout, proc.stderr, proc_json.stdout, proc_json.stderr):
        assert "S3CRETPW" not in text


def test_a_driver_error_quoting_the_password_is_masked(tmp_path: Path) -> None:
    """psycopg quotes the value it refuses: here the password, typed again into the query.
    Only the URL's password parts were masked, so the driver's message showed it in the
    attention line, the report, --json and the log file."""
    secret = "Zq9-S3CRETPW"
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"),
                  MMLR_DATABASE_URL=f"postgresql+psycopg://mmlr:{secret}@127.0.0.1:9/mmlr"
                                    f"?sslmode={secret}")
    proc = run_cli("status", env=env)
    line = attention_line(proc)
    assert "cannot connect to the database" in line and 'invalid sslmode value: "***"' in line
    proc_json = run_cli("status", "--json", env=env)
    assert json.loads(proc_json.stdout)["database"]["reachable"] is False
    log = tmp_path / "data" / "mmlr.log"
    for text in (proc.stdout, proc.stderr, proc_json.stdout, proc_json.stderr,
                 log.read_text() if log.exists() else ""):
        assert secret not in text


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(b"this is not an SQLite database, just text" * 100)
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"), MMLR_DATABASE_URL=f"sqlite:///{path}")
    proc = run_cli("status", env=env)
    line = attention_line(proc)
    assert "cannot connect to the database" in line and "file is not a database" in line
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "mmlr.sqlite3"
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"), MMLR_DATABASE_URL=f"sqlite:///{path}")
    line = attention_line(run_cli("status", env=env))
    assert f"the SQLite database {path} does not exist" in line
    assert not path.exists() and not path.parent.exists()


@pytest.mark.empty_database
def test_a_database_without_the_schema_is_not_migrated(tmp_path: Path, db_url: str) -> None:
    """status reads; it never upgrades (every other command would create the tables)."""
    if db_url.startswith("sqlite"):
        sqlite3.connect(db_url.removeprefix("sqlite:///")).close()  # an empty database file
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"), MMLR_DATABASE_URL=db_url)
    line = attention_line(run_cli("status", env=env))
    assert "the database has no mmlr schema (run `mmlr init`)" in line
    engine = make_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_an_older_schema_is_named(ctx: AppContext) -> None:
    _, head = schema_revisions(ctx.engine)
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0012'")
    line = attention_line(status(ctx.settings))
    assert f"schema is at revision 0012, this mmlr expects {head}" in line



def test_the_previous_versions_reports_do_not_await_screening(ctx: AppContext) -> None:
    """The seed evidence's reports stored as records wait for no screener: the status counts
    the records of the screening pool (a curator's report of a new trial among them)."""
    from previous_reports import ORDINARY, store_previous_reports

    with ctx.sessions() as session:
        store_previous_reports(session)
    _, report, _ = status_json(ctx.settings)
    assert report["screening"]["awaiting_screening"] == len(ORDINARY) + 1


def test_under_dual_screening_conflicts_do_not_await_screening(polled: Any) -> None:
    """As the PRISMA flow counts them: status said "awaiting screening 186" where PRISMA said
    185 and 1 in conflict, and named neither the conflicts nor the records with one vote."""
    from reports.prisma import AWAITING_STAGE, CONFLICT_STAGE, prisma_counts

    ctx, _ = polled
    with ctx.sessions() as session:
        users = [User(email=f"s{n}@example.org", role="curator", password_hash="-")
                 for n in (1, 2)]
        session.add_all(users)
        session.flush()
        first, second = (u.id for u in users)
        pmids = sorted(session.exec(select(Record.pmid)))[:2]
        session.add(Decision(pmid=pmids[0], decision="include", user_id=first, kind="vote"))
        session.add(Decision(pmid=pmids[0], decision="exclude", user_id=second, kind="vote"))
        session.add(Decision(pmid=pmids[1], decision="include", user_id=first, kind="vote"))
        session.commit()
        counts = {stage: n for stage, n, _ in prisma_counts(session, dual=True)}
    _, report, _ = status_json(ctx.settings, MMLR_SCREENERS_PER_RECORD="2")
    sc = report["screening"]
    assert (sc["in_conflict"], sc["awaiting_second_vote"]) == (1, 1)
    assert sc["awaiting_screening"] == counts[AWAITING_STAGE] and counts[CONFLICT_STAGE] == 1
    text = status(ctx.settings, MMLR_SCREENERS_PER_RECORD="2").stdout
    assert "1 of them with one vote, awaiting the second screener" in text
    assert "1 awaiting resolution" in text
    _, single, _ = status_json(ctx.settings)
    assert (single["screening"]["in_conflict"], single["screening"]["awaiting_second_vote"]) \
        == (None, None)
    assert single["screening"]["awaiting_screening"] == sc["awaiting_screening"] + 1
