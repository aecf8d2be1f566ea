"""A SQLite database another process holds locked (a ``BEGIN EXCLUSIVE`` transaction, a
backup tool, ``sqlite3`` left open mid-write): not a bug in mmlr, and over once that process
ends. Commands say so in one line (exit 1) and the scheduled jobs in one ERROR line, as they
do for an unreachable or read-only database; before, ``mmlr poll`` printed "internal error"
after waiting out the busy timeout (30 s), and a scheduled job logged a traceback.

The lock is real: a second SQLite connection holds ``BEGIN EXCLUSIVE`` on the test's file.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL, assert_one_line_error, cli_env, run_cli
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from test_poll import make_settings, write_scenario

from monitor.cycle import scheduled_job
from monitor.replay_server import start_replay_server
from store.context import make_context
from store.engine import database_locked, database_read_only, database_unreachable
from store.models import PollRun, Record


@contextmanager
def held_exclusively(db_url: str) -> Iterator[None]:
    """Another process's write transaction on the SQLite file, held until the block ends."""
    conn = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _locked_error(db_url: str) -> OperationalError:
    """The error a write gets from a database held locked, as SQLAlchemy raises it (a
    connection that does not wait, so the test does not wait out 30 s)."""
    engine = create_engine(db_url, connect_args={"timeout": 0})
    try:
        with held_exclusively(db_url), engine.begin() as conn:
            conn.execute(text("UPDATE records SET flagged = flagged"))
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the write was not refused")


def test_a_locked_database_is_recognised_as_such(db_url: str) -> None:
    if PG_URL:
        pytest.skip("SQLite's file lock (PostgreSQL has no database-wide write lock)")
    exc = _locked_error(db_url)
    assert "database is locked" in str(exc.orig)
    assert database_locked(exc)
    assert not database_unreachable(exc) and not database_read_only(exc)
    assert not database_locked(ValueError("database is locked"))  # only the driver's word


def test_a_scheduled_job_on_a_locked_database_logs_one_line(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    if PG_URL:
        pytest.skip("SQLite's file lock (PostgreSQL has no database-wide write lock)")
    exc = _locked_error(db_url)
    with caplog.at_level(logging.INFO), scheduled_job("cycle"):
        raise exc
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None, caplog.text
    assert errors[0].getMessage().startswith(
        "scheduled cycle failed: the database is locked by another process: database is "
        "locked")


def test_poll_on_a_locked_database_is_one_line_then_the_next_poll_runs(
        tmp_path: Path, db_url: str, settings: Any) -> None:
    """Waits out SQLite's busy timeout (30 s) once: the reported case, end to end."""
    if PG_URL:
        pytest.skip("SQLite's file lock (PostgreSQL has no database-wide write lock)")
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    pmids = tmp_path / "pmids.txt"
    pmids.write_text("1000\n1001\n")
    with start_replay_server(corpus, rate_limit=None) as srv:
        env = cli_env(MMLR_DATABASE_URL=db_url, MMLR_DATA_DIR=str(settings.data_dir),
                      MMLR_ENTREZ_URL=srv.url, MMLR_ENTREZ_RATE="500",
                      MMLR_ENTREZ_EMAIL="tests@example.org")
        with held_exclusively(db_url):
            proc = run_cli("poll", "--pmids", str(pmids), env=env)
        assert_one_line_error(
            proc, "mmlr: error: the database is locked by another process (database is "
                  "locked); run the command again once that process is done (an interrupted "
                  "poll: the next poll resumes it)")
        assert "internal error" not in proc.stderr
        # Once it is free, the same command runs.
        again = run_cli("poll", "--pmids", str(pmids), env=env)
        assert again.returncode == 0, again.stderr
    ctx = make_context(make_settings(tmp_path, db_url, srv.url))
    with ctx.sessions() as session:
        assert set(session.exec(select(Record.pmid))) == {1000, 1001}
        assert all(r.status == "completed" for r in session.exec(select(PollRun)))
    ctx.dispose()


def test_a_page_that_writes_to_a_locked_database_answers_503_saying_so(
        settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    """It was the generic 500 ("internal error") with a traceback in the log."""
    if PG_URL:
        pytest.skip("SQLite's file lock (PostgreSQL has no database-wide write lock)")
    from fastapi.testclient import TestClient
    from sqlalchemy import event
    from test_web import csrf_from, make_user

    from screening.web.app import create_app

    app = create_app(settings)
    engine = app.state.ctx.engine

    @event.listens_for(engine, "connect")
    def no_wait(dbapi_conn: Any, _record: Any) -> None:  # the test need not wait out 30 s
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    try:
        make_user(app, "curator@example.org", "curator")
        engine.dispose()  # the connections made from here on do not wait
        with TestClient(app, raise_server_exceptions=False) as client:
            form = client.get("/login")
            with held_exclusively(settings.db_url), caplog.at_level(logging.WARNING):
                login = client.post("/login", data={
                    "email": "curator@example.org", "password": "x" * 20,
                    "csrf_token": csrf_from(form.text)})
            assert login.status_code == 503 and login.headers["retry-after"] == "30"
            assert "Database busy" in login.text
            assert "another process holds the database locked" in login.text
            assert "Traceback" not in caplog.text
            assert "the database was locked by another process on POST /login" in caplog.text
    finally:
        app.state.ctx.dispose()
