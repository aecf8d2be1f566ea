"""Schema, migrations and engines on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import ROOT, assert_one_line_error, cli_env, run_cli
from migration_steps import alembic_config
from sqlalchemy import inspect, text
from sqlmodel import SQLModel, select

from store.errors import ConfigError
from store.models import Decision, Record, utcnow
from store.schema_objects import compared_on


def test_migrations_create_exactly_the_models(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        # Compared as the migrations compare them: APScheduler's table and the indexes of
        # another engine left out (store.schema_objects).
        mc = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_object": compared_on(conn.dialect.name)})
        diff = compare_metadata(mc, SQLModel.metadata)
    assert diff == [], f"models and migrations differ; run python -m store.revision: {diff}"


def test_migrate_twice_is_a_no_op(ctx) -> None:  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory

    from store.engine import migrate

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    migrate(ctx.engine)
    with ctx.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    assert head is not None


def test_threads_of_one_process_migrate_at_once(ctx) -> None:  # type: ignore[no-untyped-def]
    # A worker's jobs firing in the same minute each build their context, and so migrate,
    # in the scheduler's threads at once: none of them may fail for the other.
    from store.engine import migrate

    threads = 4
    barrier = threading.Barrier(threads)

    def one(_: int) -> None:
        barrier.wait()
        migrate(ctx.engine)

    for _ in range(5):
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(threads)))  # re-raises what a thread raised


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


_MIGRATE_ON_GO = """
import pathlib, sys, time
import alembic.command, alembic.config
from store.engine import make_engine, migrate
engine = make_engine(sys.argv[1])
go = pathlib.Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
migrate(engine)
"""


def test_processes_migrate_one_database_at_once(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # `mmlr web` and `mmlr worker` started together on a new database (or after an upgrade of
    # mmlr) both migrate it: each must find it migrated or migrate it, never fail.
    from store.engine import check_connection, make_engine

    # The database exists, empty: on SQLite a file's very first connections race to turn WAL
    # on, a different matter from the migrations this test is about.
    engine = make_engine(db_url)
    check_connection(engine)
    engine.dispose()
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE_ON_GO, db_url, str(go)],
                              cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        go.touch()
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (_head(),)]
    finally:
        engine.dispose()


def test_a_database_from_a_newer_mmlr_is_refused_unchanged(ctx) -> None:  # type: ignore[no-untyped-def]
    # An older mmlr (a rolled-back image) started on a database a newer one upgraded.
    from store.engine import migrate

    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match=(r"schema revision 9999, newer than this mmlr knows "
                                           rf"\(up to {_head()}\): a newer mmlr upgraded it")):
        migrate(ctx.engine)
    with ctx.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [("9999",)]


@pytest.mark.empty_database
def test_another_programs_database_is_refused_unchanged(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A mistyped MMLR_DATABASE_URL: mmlr's tables were created beside the other program's,
    # and `mmlr pool` then reported an empty review with exit 0.
    from store.engine import make_engine, migrate

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE lab_samples (id INTEGER PRIMARY KEY, tube TEXT)"))
        with pytest.raises(ConfigError, match=r"is not an mmlr database: it has other tables "
                                              r"\(lab_samples\) and no mmlr schema"):
            migrate(engine)
        with engine.connect() as conn:
            assert sorted(inspect(conn).get_table_names()) == ["lab_samples"]  # unchanged
    finally:
        engine.dispose()
    pooled = run_cli("pool", env=cli_env(MMLR_DATABASE_URL=db_url,
                                          MMLR_DATA_DIR=str(tmp_path / "data")))
    assert_one_line_error(pooled, "is not an mmlr database", "(lab_samples)",
                          "nothing was changed")


@pytest.mark.empty_database
def test_a_first_migration_stopped_half_way_is_not_foreign(db_url: str) -> None:
    # mmlr's own tables without a revision (the first migration failed part-way on an engine
    # without transactional DDL): not another program's data, so not refused for it.
    from store.engine import _refuse_foreign_tables, make_engine

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE records (pmid BIGINT PRIMARY KEY)"))
        _refuse_foreign_tables(engine)
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(ctx) -> None:  # type: ignore[no-untyped-def]
    if not ctx.settings.is_sqlite:
        pytest.skip("SQLite only")
    with ctx.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_records_round_trip_json_and_aware_timestamps(ctx) -> None:  # type: ignore[no-untyped-def]
    mesh = [
        {
            "descriptor": "Multiple Myeloma",
            "major": True,
            "qualifiers": [{"name": "drug therapy", "major": False}],
        }
    ]
    with ctx.sessions() as s:
        s.add(Record(pmid=90000001, title="Ünïcode title", mesh=mesh, authors=["Šimková J"]))
        s.commit()
    with ctx.sessions() as s:
        rec = s.get(Record, 90000001)
        assert rec is not None and rec.mesh == mesh and rec.authors == ["Šimková J"]
        assert rec.first_seen_at.tzinfo is not None
        assert abs(rec.first_seen_at - utcnow()) < timedelta(minutes=1)


def test_naive_timestamps_are_refused(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add(Decision(pmid=1, decision="include", created_at=datetime(2026, 1, 1)))
        with pytest.raises(Exception, match="timezone"):
            s.commit()


def test_pmids_beyond_32_bits_fit(ctx) -> None:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        s.add(Record(pmid=2**33, title="big"))
        s.commit()
        assert s.exec(select(Record.pmid)).all() == [2**33]


def test_bad_database_url_is_a_config_error() -> None:
    from store.engine import make_engine

    with pytest.raises(ConfigError, match="not a valid database URL"):
        make_engine("::not a url::")


def test_aware_utc_helper() -> None:
    assert utcnow().tzinfo is UTC
