"""``mmlr copy-db``: a review moves from one database to another (SQLite to PostgreSQL and
back) whole, proven row by row, or not at all; the copy then works as the review did."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    PG_URL,
    _drop_pg_database,
    _fresh_pg_database,
    _pg_admin,
    assert_one_line_error,
    cli_env,
    run_cli,
)
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.bootstrap import initialise
from reports.pool import pool_all
from screening.web.auth import add_user
from store.context import AppContext
from store.copy_db import copy_database, copy_tables, target_engine
from store.engine import make_engine, migrate, schema_revisions
from store.errors import ConfigError, LockedError, ValidationError
from store.locks import job_lock
from store.models import (
    Decision,
    Estimate,
    KeyValue,
    LoginSession,
    ModelVersion,
    Record,
    User,
    utcnow,
)

NASTY = "Müller–Ødegård \"maintenance\", 'lenalidomide'\n<b>after</b> ASCT ≥ 1 y; ½ dose"


@pytest.fixture
def review(ctx: AppContext) -> AppContext:
    """The run's database (SQLite, or PostgreSQL in the PostgreSQL run) with a review in it."""
    return _fill(ctx)


@pytest.fixture
def sqlite_review(settings: Any, tmp_path: Path) -> Iterator[AppContext]:
    """A review on a SQLite file whatever the run: the embedded default a team moves from."""
    from store.context import make_context

    local = settings.model_copy(update={
        "database_url": f"sqlite:///{tmp_path / 'embedded' / 'mmlr.sqlite3'}"})
    context = make_context(local)
    yield _fill(context)
    context.dispose()


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """An empty SQLite file to copy into: its URL and engine."""
    url = f"sqlite:///{tmp_path / 'copy.sqlite3'}"
    engine = target_engine(url)
    yield url, engine
    engine.dispose()


def _fill(ctx: AppContext) -> AppContext:
    """Some of everything: seed evidence and pooled results (mmlr init and a pool run),
    users and a login, records with lists, non-ASCII text and a record with nothing but its
    PMID, a model with its bytes, decisions pointing at it, an estimate superseding another,
    a JSON null and an SQL NULL."""
    initialise(ctx)
    with ctx.sessions() as s:
        add_user(s, "curator@example.org", role="curator", password="a-long-password-1")
        curator = s.exec(select(User).where(User.email == "curator@example.org")).one()
        assert curator.id is not None
        s.add(LoginSession(token_hash="h" * 64, user_id=curator.id))
        model = ModelVersion(config={"C": 0.11}, artifact=bytes(range(256)) * 4)
        s.add(model)
        s.flush()
        # identified by a search, by PMID (PRISMA's other methods) and as a watched trial
        # report: the route that first identified a record is the review's, and moves with it
        routes = {31000001: "search", 31000002: "pmid", 31000003: "watched"}
        for pmid in (31000001, 31000002, 31000003):
            s.add(Record(pmid=pmid, identified_via=routes[pmid],
                         title=f"{NASTY} {pmid}", abstract=NASTY * 3,
                         authors=["Müller H", "Ødegård K"], mesh=[{"descriptor": "Multiple "
                         "Myeloma", "major": True, "qualifiers": ["therapy"]}],
                         year=2024, score=0.123456789012345, score_model_version_id=model.id))
        s.add(Record(pmid=31000004, title=""))
        s.add(Decision(pmid=31000001, decision="include", user_id=curator.id,
                       model_version_id=model.id))
        first = s.exec(select(Estimate).order_by(Estimate.id)).first()  # type: ignore[arg-type]
        assert first is not None
        s.add(Estimate(**{**first.model_dump(exclude={"id", "printed", "derivation_inputs"}),
                          "supersedes_id": first.id, "data_cut": date(2026, 6, 30)}))
        s.add(KeyValue(key="plain", value={"a": [1, 2.5, None, "é"]}))
        s.commit()
    with ctx.engine.begin() as conn:  # a stored JSON null, as an older release could write
        conn.execute(text("INSERT INTO key_values (key, value, updated_at) "
                          "VALUES ('json-null', 'null', :at)"), {"at": utcnow()})
    pool_all(ctx)
    return ctx


def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(
                t.select().order_by(*t.primary_key.columns))] for t in copy_tables()}
    finally:
        engine.dispose()


def _pairs(review: AppContext, sqlite_review: AppContext,
           tmp_path: Path) -> Iterator[tuple[AppContext, str]]:
    """(source, target URL): the run's database to a new SQLite file (PostgreSQL to SQLite
    in the PostgreSQL run) and, where a server is configured, SQLite to PostgreSQL."""
    yield review, f"sqlite:///{tmp_path / 'copy' / 'mmlr.sqlite3'}"
    if PG_URL:
        url, name = _fresh_pg_database(PG_URL)
        try:
            yield sqlite_review, url
        finally:
            _drop_pg_database(PG_URL, name)


def test_the_copy_holds_every_row_and_works_as_the_review(
        review: AppContext, sqlite_review: AppContext, tmp_path: Path) -> None:
    """Every table equal, value by value; the source untouched; the copy takes new rows
    (PostgreSQL's id sequences continue after the copied ids)."""
    for source, target_url in _pairs(review, sqlite_review, tmp_path):
        source_url = source.settings.db_url
        before = _dump(source_url)
        assert before["records"] and before["estimates"] and before["pooled_results"]
        target = target_engine(target_url)
        try:
            report = copy_database(source.engine, target)
        finally:
            target.dispose()
        assert report.rows == {name: len(rows) for name, rows in before.items()}
        assert report.total == sum(map(len, before.values()))
        assert _dump(target_url) == before
        assert _dump(source_url) == before  # the source is only read
        engine = make_engine(target_url)
        try:
            with engine.connect() as conn:
                nulls = {key: bool(null) for key, null in conn.execute(text(
                    "SELECT key, value IS NULL FROM key_values")).all()}
                assert nulls == {"plain": False, "json-null": False}  # JSON null kept
                assert conn.execute(text("SELECT COUNT(*) FROM estimates "
                                         "WHERE printed IS NULL")).scalar_one() >= 1
                routes = dict(conn.execute(text(
                    "SELECT pmid, identified_via FROM records")).all())
                assert routes == {31000001: "search", 31000002: "pmid", 31000003: "watched",
                                  31000004: "search"}
            with Session(engine) as s:
                s.add(User(email="new@example.org", role="viewer", password_hash="x"))
                s.add(Decision(pmid=31000002, decision="exclude"))
                s.commit()
                assert s.exec(select(User).where(User.email == "new@example.org")).one().id \
                    == max(row[0] for row in before["users"]) + 1
                artifact = s.exec(select(ModelVersion)).one().artifact
                assert artifact == bytes(range(256)) * 4
        finally:
            engine.dispose()


def test_a_target_with_data_is_refused_and_left_as_it_was(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    target_url, target = sqlite_target
    copy_database(review.engine, target)
    with review.sessions() as s:  # the source moves on
        s.add(Record(pmid=31000009, title="later"))
        s.commit()
    before = _dump(target_url)
    with pytest.raises(ValidationError, match=r"already holds data \(.*records: 4.*\); "
                                              "copy-db fills an empty database only"):
        copy_database(review.engine, target)
    assert _dump(target_url) == before


def test_an_older_reviews_database_is_refused_without_being_upgraded(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """Before: the target was migrated to this mmlr's schema first and judged empty after,
    so another review's database at revision 0013 was upgraded to head, then refused. Now
    its ``alembic_version`` row alone refuses it, before anything in it changes."""
    from alembic import command

    from store.engine import _alembic_config

    _, target = sqlite_target
    command.upgrade(_alembic_config(target), "0013")
    tables = sorted(inspect(target).get_table_names())
    with pytest.raises(ValidationError, match=r"already holds data \(alembic_version: 1\)"):
        copy_database(review.engine, target)
    assert schema_revisions(target)[0] == ("0013",)
    assert sorted(inspect(target).get_table_names()) == tables
    with target.begin() as conn:  # a table of some other application's, with a row
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("CREATE TABLE notes (body TEXT)"))
        conn.execute(text("INSERT INTO notes VALUES ('theirs')"))
    with pytest.raises(ValidationError, match=r"already holds data \(notes: 1\)"):
        copy_database(review.engine, target)
    assert schema_revisions(target)[0] == ()


def test_cli_copy_db_from_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    """A wrong MMLR_DATA_DIR: the source is only read, so a file that is not there is named
    in one line; before, an empty mmlr.sqlite3 (and its folder) was created there."""
    wrong = tmp_path / "wrong-data-dir"
    proc = run_cli("copy-db", f"sqlite:///{tmp_path / 'copy.sqlite3'}",
                   env=cli_env(MMLR_DATA_DIR=str(wrong)))
    assert_one_line_error(proc, f"the source database {wrong / 'mmlr.sqlite3'} does not exist",
                          "check MMLR_DATA_DIR")
    assert not (wrong / "mmlr.sqlite3").exists()
    assert not (tmp_path / "copy.sqlite3").exists()


def test_the_source_itself_is_refused(review: AppContext) -> None:
    with pytest.raises(ValidationError, match="the target is the source database"):
        copy_database(review.engine, review.engine)


def test_a_running_job_stops_the_copy_before_the_target_is_touched(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """A poll writing during the copy would be lost with the old database: stop first."""
    _, target = sqlite_target
    with job_lock(review.engine, "poll"), \
            pytest.raises(LockedError, match="a job is running on the source database: poll"):
        copy_database(review.engine, target)
    assert inspect(target).get_table_names() == []  # not even the schema


def test_a_source_behind_the_schema_is_refused(tmp_path: Path) -> None:
    from alembic import command

    from store.engine import _alembic_config

    old = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    target = target_engine(f"sqlite:///{tmp_path / 'new' / 'copy.sqlite3'}")
    try:
        migrate(old)
        command.downgrade(_alembic_config(old), "-1")
        head = schema_revisions(old)[1]
        with pytest.raises(ConfigError, match=rf"is at schema revision \d+, this mmlr writes "
                                              rf"{head}$") as behind:
            copy_database(old, target)
        assert "run `mmlr init` on it first" in behind.value.one_line()
        empty = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        with pytest.raises(ConfigError, match="has no mmlr schema"):
            copy_database(empty, target)
        empty.dispose()
        assert not (tmp_path / "new").exists()  # the target not even created
    finally:
        old.dispose()
        target.dispose()


def _newer(url: str) -> None:
    """The database at a revision this mmlr does not know, as a newer mmlr leaves it."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        engine.dispose()


def test_a_source_a_newer_mmlr_upgraded_is_refused_before_the_target_is_made(
        tmp_path: Path) -> None:
    """Before: "is at schema revision 0999, this mmlr writes …" with the hint to run
    `mmlr init`, which refuses such a database, and the target file already created."""
    source_url = f"sqlite:///{tmp_path / 'newer.sqlite3'}"
    source = make_engine(source_url)
    migrate(source)
    head = schema_revisions(source)[1]
    _newer(source_url)
    target = target_engine(f"sqlite:///{tmp_path / 'moved' / 'copy.sqlite3'}")
    try:
        with pytest.raises(ConfigError, match=rf"^the source database sqlite:///\S+ is at "
                                              rf"schema revision 0999, newer than this mmlr "
                                              rf"knows \(up to {head}\): a newer mmlr "
                                              "upgraded it$") as newer:
            copy_database(source, target)
        assert newer.value.hint is not None and "upgrade mmlr" in newer.value.hint
        assert not (tmp_path / "moved").exists()
    finally:
        source.dispose()
        target.dispose()


def test_cli_copy_db_from_a_newer_source_says_so_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    source = make_engine(f"sqlite:///{data / 'mmlr.sqlite3'}")
    migrate(source)
    source.dispose()
    _newer(f"sqlite:///{data / 'mmlr.sqlite3'}")
    proc = run_cli("copy-db", f"sqlite:///{tmp_path / 'moved' / 'copy.sqlite3'}",
                   env=cli_env(MMLR_DATA_DIR=str(data)))
    assert_one_line_error(proc, "is at schema revision 0999, newer than this mmlr knows",
                          "upgrade mmlr here")
    assert not (tmp_path / "moved").exists()


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite://", "in-memory SQLite database: the copy would be thrown away"),
    ("sqlite:///:memory:", "in-memory SQLite database"),
    ("not a url", "the target 'not a url' is not a database URL"),
    ("mysql://u@h/db", "the target: unsupported database URL scheme 'mysql'"),
    # drivers mmlr does not ship (plain postgresql:// meant psycopg2): an internal error
    ("postgresql+psycopg2://u@h/db", "the target: unsupported database driver 'psycopg2' in "
                                     "postgresql[+]psycopg2://"),
    ("sqlite+aiosqlite:///x.db", "unsupported database driver 'aiosqlite'"),
])
def test_targets_that_cannot_hold_the_copy(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        target_engine(url)


def test_a_plain_postgresql_target_is_opened_with_psycopg_3() -> None:
    # SQLAlchemy reads postgresql:// as psycopg2, which mmlr does not ship
    engine = target_engine("postgresql://u@h/db")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@h/db", "sqlite+aiosqlite:///x.db"])
def test_cli_copy_db_to_a_driver_mmlr_does_not_ship(url: str, tmp_path: Path) -> None:
    proc = run_cli("copy-db", url, env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    driver = url.split(":")[0]
    assert_one_line_error(
        proc, f"mmlr: error: the target: unsupported database driver "
              f"{driver.split('+')[1]!r} in {driver}://: mmlr ships Python's sqlite3 and "
              "psycopg 3 and opens only sqlite://, sqlite+pysqlite://, postgresql:// and "
              "postgresql+psycopg:// URLs, e.g. sqlite:///PATH or "
              "postgresql+psycopg://USER:PASS@HOST/DB (check TARGET_URL)")


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://mm:Ab@cd:Secr3tTail@127.0.0.1:54400/mmpw",
    "postgresql+psycopg://mm:Ab@cdSecr3tTail@127.0.0.1:54400/mmpw",
    "postgresql+psycopg://mm:Secr3tTail@127.0.0.1:5x4400/mmpw",
])
def test_cli_copy_db_to_a_url_with_a_bad_password_part_says_so_in_one_line(
        url: str, tmp_path: Path) -> None:
    """Before: an '@' in the password, read at SQLAlchemy's first '@', made a port of the
    password's tail and copy-db stopped with "internal error in copy-db" and a traceback
    (make_url's ValueError); the message of such an error quotes the password."""
    proc = run_cli("copy-db", url, env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    if "5x4400" in url:
        assert_one_line_error(proc, "is not a database URL")
    else:
        assert_one_line_error(proc, "the target has an '@' in its user name or password: "
                                    "write each '@' there percent-encoded, as %40")
    assert "Secr3tTail" not in proc.stderr + proc.stdout


def test_a_row_the_target_refuses_leaves_it_empty(sqlite_review: AppContext,
                                                  pg_admin_url: str) -> None:
    """PostgreSQL refuses a NUL character that SQLite stores: the copy stops naming the
    table and keys, and the target keeps nothing, not even the schema (one transaction)."""
    review = sqlite_review
    with review.sessions() as s:
        s.add(Record(pmid=31000005, title="a NUL \x00 in a title"))
        s.commit()
    url, name = _fresh_pg_database(pg_admin_url)
    target = target_engine(url)
    try:
        with pytest.raises(ValidationError, match=r"^the target refused the row of records "
                                                  r"with pmid 31000005: .*nothing was "
                                                  "committed") as refused:
            copy_database(review.engine, target)
        assert "put that row right in the source" in refused.value.one_line()
        assert inspect(target).get_table_names() == []
    finally:
        target.dispose()
        _drop_pg_database(pg_admin_url, name)


def _orphan_decision(review: AppContext) -> None:
    """A decision whose user is not there, as a SQLite database written without foreign
    keys enforced (an older release, a hand edit) can hold: a target enforcing them refuses
    it."""
    with review.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or ignored
        conn.execute(text("UPDATE decisions SET user_id = 999999 WHERE pmid = 31000001"))
        conn.commit()
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def test_a_failed_copy_leaves_no_schema_and_a_retry_copies(
        sqlite_review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """Before: the target's schema was made in a transaction of its own, before the copy's;
    a copy that failed left it behind, and the retry refused the target as holding data
    (alembic_version: 1). Now the schema and the rows are one transaction."""
    target_url, target = sqlite_target
    _orphan_decision(sqlite_review)
    with pytest.raises(ValidationError, match="the target refused the row of decisions"):
        copy_database(sqlite_review.engine, target)
    assert inspect(target).get_table_names() == []
    with sqlite_review.engine.begin() as conn:  # the source put right
        conn.execute(text("DELETE FROM decisions WHERE user_id = 999999"))
    report = copy_database(sqlite_review.engine, target)
    assert _dump(target_url) == _dump(sqlite_review.settings.db_url)
    assert report.rows["records"] == 4


def test_cli_a_failed_copy_into_a_new_sqlite_file_leaves_no_file(
        sqlite_review: AppContext, tmp_path: Path) -> None:
    """Before: the refused copy left an empty mmlr.sqlite3 (and its folder) behind."""
    _orphan_decision(sqlite_review)
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"),
                  MMLR_DATABASE_URL=sqlite_review.settings.db_url)
    target = tmp_path / "moved" / "deeper" / "mmlr.sqlite3"
    proc = run_cli("copy-db", f"sqlite:///{target}", env=env)
    assert_one_line_error(proc, "the target refused the row of decisions")
    assert not (tmp_path / "moved").exists()
    # (tmp_path / "moved" holds another file: only the folder made for the copy goes)
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "notes.txt").write_text("mine")
    proc = run_cli("copy-db", f"sqlite:///{tmp_path / 'moved' / 'mmlr.sqlite3'}", env=env)
    assert_one_line_error(proc, "the target refused the row of decisions")
    assert sorted(p.name for p in (tmp_path / "moved").iterdir()) == ["notes.txt"]


def test_a_failed_copy_never_removes_a_file_that_was_there(
        sqlite_review: AppContext, tmp_path: Path) -> None:
    """An empty file made beforehand (``touch``, an empty database): it stays, as it was."""
    _orphan_decision(sqlite_review)
    target = tmp_path / "prepared.sqlite3"
    target.write_bytes(b"")
    engine = target_engine(f"sqlite:///{target}")
    try:
        with pytest.raises(ValidationError, match="the target refused the row of decisions"):
            copy_database(sqlite_review.engine, engine)
    finally:
        engine.dispose()
    assert target.is_file()
    after = make_engine(f"sqlite:///{target}")
    try:
        assert inspect(after).get_table_names() == []
    finally:
        after.dispose()


def test_a_refused_row_is_named_by_its_key(
        sqlite_review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """Before: the batch's range of keys (decisions 1 to 2, up to 500 rows), not the row."""
    _, target = sqlite_target
    with sqlite_review.sessions() as s:
        s.add(Decision(pmid=31000002, decision="exclude"))
        s.add(Decision(pmid=31000003, decision="exclude"))
        s.commit()
    _orphan_decision(sqlite_review)  # the first of the three, in one batch
    with sqlite_review.engine.connect() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM decisions ORDER BY id"))]
        (orphan,) = conn.execute(text("SELECT id FROM decisions "
                                      "WHERE user_id = 999999")).one()
    assert len(ids) == 3 and orphan == ids[0]
    with pytest.raises(ValidationError, match=rf"^the target refused the row of decisions "
                                              rf"with id {orphan}: FOREIGN KEY constraint "
                                              "failed; nothing was committed to the "
                                              "target$") as refused:
        copy_database(sqlite_review.engine, target)
    assert refused.value.hint == "put that row right in the source, then copy again"
    assert inspect(target).get_table_names() == []


def test_an_empty_schema_at_head_is_a_target(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """A schema with no rows, at this mmlr's head (an earlier copy's that failed, or one
    `mmlr web` made when started on the new database first), is what the copy makes: it is
    copied into, where it was refused as holding data (alembic_version: 1)."""
    target_url, target = sqlite_target
    migrate(target)
    copy_database(review.engine, target)
    assert _dump(target_url) == _dump(review.settings.db_url)


def test_a_target_with_another_applications_empty_tables_is_refused(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    _, target = sqlite_target
    with target.begin() as conn:
        conn.execute(text("CREATE TABLE notes (body TEXT)"))
    with pytest.raises(ValidationError, match=r"has tables of another application \(notes\) "
                                              "and no mmlr schema"):
        copy_database(review.engine, target)
    assert inspect(target).get_table_names() == ["notes"]


def test_a_difference_read_back_names_the_table_and_key(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """The comparison that proves a copy: two databases that differ in one value."""
    from store.copy_db import _compare_table

    _, target = sqlite_target
    copy_database(review.engine, target)
    with target.begin() as conn:
        conn.execute(text("UPDATE records SET title = 'changed' WHERE pmid = 31000002"))
    (records,) = [t for t in copy_tables() if t.name == "records"]
    with review.engine.connect() as src, target.connect() as dst, \
            pytest.raises(ValidationError, match="the copy of records differs from the "
                                                 "source at key 31000002"):
        _compare_table(src, dst, records)


def test_cli_copy_db(review: AppContext, tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=review.settings.db_url)
    target = tmp_path / "moved" / "mmlr.sqlite3"
    proc = run_cli("copy-db", f"sqlite:///{target}", env=env)
    assert proc.returncode == 0, proc.stderr
    first, *rows = proc.stdout.splitlines()
    assert first.startswith(f"copied {review.engine.url.render_as_string(hide_password=True)}"
                            f" -> sqlite:///{target} (schema ")
    assert "each compared with the source" in first
    assert any(r.split() == ["records", "4"] for r in rows)
    again = run_cli("copy-db", f"sqlite:///{target}", env=env)
    assert_one_line_error(again, "already holds data")
    missing = run_cli("copy-db", env=env)
    assert missing.returncode == 2 and "TARGET_URL" in missing.stderr


def test_a_password_in_the_target_url_reaches_no_output(review: AppContext,
                                                        pg_admin_url: str,
                                                        tmp_path: Path) -> None:
    """The target's password (if typed into the URL) is masked in every line mmlr writes."""
    from sqlalchemy.engine import make_url

    url, name = _fresh_pg_database(pg_admin_url)
    secret = "s3cret-Pa55word"
    with_password = make_url(url).set(password=secret).render_as_string(hide_password=False)
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=review.settings.db_url)
    try:
        proc = run_cli("copy-db", with_password, env=env)
        log = (tmp_path / "d" / "mmlr.log")
        written = proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")
        assert secret not in written
        assert proc.returncode == 0 or "***" in proc.stderr, proc.stderr
    finally:
        _drop_pg_database(pg_admin_url, name)


def test_a_write_to_the_source_during_the_copy_fails_it(
        review: AppContext, sqlite_target: tuple[str, Engine]) -> None:
    """A curator's decision saved while the copy runs (a web app left running) is in the
    source only: the command fails naming what the target misses."""
    from store.errors import StateError

    written: list[str] = []

    def a_curator_decides(table: str, rows: int) -> None:
        if not written:
            with review.sessions() as s:
                s.add(Decision(pmid=31000003, decision="exclude"))
                s.commit()
            written.append(table)

    with pytest.raises(StateError, match=r"the source database changed during the copy "
                                         r"\(decisions: \+1 rows\): the copy missed those "
                                         r"writes and sqlite:///.* was removed"):
        copy_database(review.engine, sqlite_target[1], progress=a_curator_decides)
    assert written
    # a new file: the copy that must not be used is not left to be used
    assert not Path(str(sqlite_target[1].url.database)).exists()


def test_text_keys_in_a_postgresql_database_of_a_language_collation(
        sqlite_review: AppContext, pg_admin_url: str, tmp_path: Path) -> None:
    """A production PostgreSQL database is often made with a language's collation (en_US,
    ICU), in which 'a' sorts before 'B'; SQLite compares bytes. Before, the rows read back
    came in another order than the source's, and the copy failed ("the copy of key_values
    differs from the source at key ..."), both ways. Now text keys are compared in byte
    order on both: SQLite to PostgreSQL and back, over more than a batch of keys."""
    from store.copy_db import BATCH

    with sqlite_review.engine.begin() as conn:
        conn.execute(text("INSERT INTO key_values (key, value, updated_at) VALUES "
                          "(:key, '1', :at)"),
                     [{"key": f"{'aB'[i % 2]}{i:04d}", "at": utcnow()}
                      for i in range(BATCH + 100)] + [{"key": k, "at": utcnow()}
                                                      for k in ("Zeta", "ä", "_x", "é")])
    name = f"mmlr_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin(pg_admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0 '
                              "LOCALE_PROVIDER icu ICU_LOCALE 'en'"))
    finally:
        admin.dispose()
    from sqlalchemy.engine import make_url

    pg_url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    back_url = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    try:
        to_pg = target_engine(pg_url)
        try:
            with to_pg.connect() as conn:  # the database orders text as English does
                assert conn.execute(text("SELECT 'a' < 'B'")).scalar_one() is True
            copy_database(sqlite_review.engine, to_pg)
        finally:
            to_pg.dispose()
        source, back = make_engine(pg_url), target_engine(back_url)
        try:
            copy_database(source, back)
        finally:
            source.dispose()
            back.dispose()
        assert _dump(back_url) == _dump(sqlite_review.settings.db_url)
    finally:
        _drop_pg_database(pg_admin_url, name)


def test_the_schedule_moves_with_the_review(review: AppContext, sqlite_review: AppContext,
                                            tmp_path: Path) -> None:
    """The scheduler's jobs (APScheduler's apscheduler_jobs) are copied. Before, they stayed
    behind: a worker started on the copy found no stored jobs, and the daily poll whose
    slot passed while the processes were stopped for the move was skipped to the next day
    (the weekly digest to the next week), where after any restart it runs late, once."""
    from datetime import UTC, datetime

    from monitor.scheduler import _trigger, build_scheduler, current_tick

    for source, target_url in _pairs(review, sqlite_review, tmp_path):
        scheduler = build_scheduler(source.settings)
        scheduler.start(paused=True)
        scheduler.shutdown(wait=False)
        missed = current_tick(_trigger("poll-cycle", source.settings.poll_cron),
                              datetime.now(UTC))
        assert missed is not None
        with source.engine.begin() as conn:  # the slot that passed during the move
            conn.execute(text("UPDATE apscheduler_jobs SET next_run_time = :t WHERE id = :id"),
                         {"t": missed.timestamp(), "id": "poll-cycle"})
            jobs = conn.execute(text("SELECT id, next_run_time, job_state FROM "
                                     "apscheduler_jobs ORDER BY id")).all()
        target = target_engine(target_url)
        try:
            report = copy_database(source.engine, target)
            with target.connect() as conn:
                assert conn.execute(text("SELECT id, next_run_time, job_state FROM "
                                         "apscheduler_jobs ORDER BY id")).all() == jobs
        finally:
            target.dispose()
        assert report.rows["apscheduler_jobs"] == 3
        moved = build_scheduler(source.settings.model_copy(
            update={"database_url": target_url}))
        moved.start(paused=True)
        try:
            assert moved.get_job("poll-cycle").next_run_time == missed  # runs late, once
        finally:
            moved.shutdown(wait=False)
