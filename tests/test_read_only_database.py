"""A database mmlr may read but not write (a file without write permission, a PostgreSQL
standby): every command and page says so in one line, naming what to fix, and changes
nothing; it was an internal error with a traceback in the log.

The refusal is real: on SQLite the file is opened read-only (a URI filename with
``mode=ro``, since the suite runs as root, whom file permissions do not stop); on PostgreSQL
the test's database is set to ``default_transaction_read_only``, as a standby behaves.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL, assert_one_line_error, cli_env, run_cli
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import select
from test_web import csrf_from

from screening.web.app import create_app
from store.context import make_context
from store.engine import check_connection, database_read_only, make_engine
from store.errors import ConfigError
from store.models import User


def _read_only(settings: Any) -> tuple[Any, str]:
    """The test's database, migrated, then made read-only: its settings, and the hint's
    words for it."""
    make_context(settings).dispose()  # the schema at head while it may still be written
    url = make_url(settings.db_url)
    if PG_URL:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{url.database}" '
                                  "SET default_transaction_read_only = on"))
        finally:
            admin.dispose()
        return settings, "not a read-only standby"
    read_only = f"sqlite:///file:{url.database}?mode=ro&uri=true"
    return settings.model_copy(update={"database_url": read_only}), \
        f"write access to {url.database} and its folder"


def test_a_command_that_writes_says_the_database_is_read_only(settings: Any) -> None:
    read_only, hint = _read_only(settings)
    env = cli_env(MMLR_DATABASE_URL=read_only.db_url, MMLR_DATA_DIR=str(settings.data_dir),
                  MMLR_SECRET_KEY="test-secret-key-that-is-long-enough-0123456789")
    added = run_cli("users", "add", "reader@example.org", "--role", "viewer", env=env)
    assert_one_line_error(added, "the database cannot be written: ", "nothing was changed",
                          hint)
    assert "internal error" not in added.stderr
    listed = run_cli("users", "list", "--json", env=env)  # reading still works
    assert listed.returncode == 0, listed.stderr
    assert "reader@example.org" not in listed.stdout


def test_a_page_that_writes_answers_503_saying_the_database_is_read_only(
        settings: Any) -> None:
    read_only, _ = _read_only(settings)
    app = create_app(read_only)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            form = client.get("/login")
            assert form.status_code == 200  # reading works
            # A login writes (the audit trail, the last login): refused, said in words.
            login = client.post("/login", data={
                "email": "admin@example.org", "password": "first-login-passphrase-for-tests",
                "csrf_token": csrf_from(form.text)})
            assert login.status_code == 503
            assert "Database read-only" in login.text
            assert "the database may only be read, so nothing was saved" in login.text
            api = client.post("/api/decisions", json={"pmid": 1, "decision": "include"},
                              headers={"Authorization": "Bearer x"})
            assert api.status_code in (401, 503)  # a token check that reads first
    finally:
        app.state.ctx.dispose()


def test_only_a_refused_write_counts_as_read_only(settings: Any) -> None:
    ctx = make_context(settings)
    try:
        with ctx.sessions() as session:
            session.add(User(email="one@example.org", role="viewer", password_hash="x"))
            session.commit()
        try:
            with ctx.sessions() as session:  # a constraint: the data's fault, not the set-up's
                session.add(User(email="one@example.org", role="viewer", password_hash="x"))
                session.commit()
        except Exception as exc:
            assert not database_read_only(exc)
        else:
            raise AssertionError("a second user with the same address was stored")
        assert not database_read_only(ValueError("attempt to write a readonly database"))
        with ctx.sessions() as session:
            assert len(session.exec(select(User)).all()) == 1
    finally:
        ctx.dispose()


def test_a_sqlite_file_that_cannot_switch_to_wal_is_named_as_read_only_not_a_bad_url(
        tmp_path: Path) -> None:
    # What a read-only folder does (as root the tests cannot take write access away): the
    # connection's first write, the switch to WAL, is refused. It said "check
    # MMLR_DATABASE_URL", which is right.
    path = tmp_path / "review.sqlite3"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (x)")
    plain.commit()
    plain.close()
    engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(ConfigError) as caught:
            check_connection(engine)
    finally:
        engine.dispose()
    line = caught.value.one_line()
    assert "attempt to write a readonly database" in line and "MMLR_DATABASE_URL" not in line
    assert f"give the user running mmlr write access to {path} and its folder" in line


def test_a_sqlite_uri_filename_creates_no_folder_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite reads "file:...?uri=true" itself; taken for a path, it made a folder named
    # "file:" (and the whole path below it) in the working folder.
    path = tmp_path / "review.sqlite3"
    plain = sqlite3.connect(path)
    plain.execute("CREATE TABLE t (x)")
    plain.execute("INSERT INTO t VALUES (7)")
    plain.commit()
    plain.close()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    engine = make_engine(f"sqlite:///file:{path}?mode=rw&uri=true")
    try:
        with engine.connect() as conn:  # it still opens the file the URI names
            assert conn.execute(text("SELECT x FROM t")).scalar() == 7
    finally:
        engine.dispose()
    assert list(cwd.iterdir()) == []
