"""``mmlr copy-db TARGET``: the whole review, every table, into another, empty database.

A team tries mmlr on the embedded default (SQLite) and screens, extracts and verifies for
weeks before it moves to PostgreSQL for production; the curation is the review and must move
with it, to the row. This copies every table of the schema from the configured database
(``MMLR_DATABASE_URL``) into ``TARGET`` — SQLite to PostgreSQL, or back — and then proves it:

* the source must be at the schema this mmlr expects (``mmlr init`` upgrades an older one
  first; a newer one needs a newer mmlr), and no job may be running on it (a poll or a pool
  writing during the copy would be lost): all judged before the target is touched;
* the target must hold no rows in any table (an ``alembic_version`` row included, unless it
  is this mmlr's head and no other table holds a row: an empty schema is what the copy
  makes), judged before anything is changed in it; then it gets the schema (Alembic, as
  ``mmlr init`` does);
* a SQLite source file that does not exist is refused, not created;
* the source is read in one snapshot (a read transaction on SQLite, REPEATABLE READ on
  PostgreSQL) and the target's schema and rows written in one transaction (``BEGIN
  IMMEDIATE`` on SQLite, whose DDL is transactional as PostgreSQL's is): a failure leaves
  the target as it was;
* tables in foreign-key order, rows in primary-key order (a superseding estimate comes after
  the one it supersedes; a text key in byte order on both engines, which the comparison
  relies on), in batches; SQL NULL and JSON ``null`` stay distinct;
* the scheduler's jobs (``apscheduler_jobs``, APScheduler's own table, outside Alembic) are
  copied too, when a worker made the table: a slot missed while the processes were stopped
  for the move still runs late, once, as after any restart;
* PostgreSQL's id sequences continue after the copied rows, so the next insert does not
  collide with one;
* a row the target refuses (a NUL in PostgreSQL text, a foreign key pointing nowhere) is
  named by its table and key, and nothing is committed;
* before the commit every table is read back and compared, row by row and value by value,
  with the source: a difference names the table and the key, and nothing is committed;
* after it, the source is counted again: a row written there during the copy (a web app
  left running) is not in the target, and the command fails saying so;
* a failed copy into a SQLite file that did not exist before removes that file (and the
  folders made for it), never one that was there.

Nothing in the source is changed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, Table, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

from store.engine import (
    check_connection,
    is_sqlite_uri,
    known_revision,
    make_engine,
    migrate_within,
    schema_revisions,
    shown_url,
    sqlite_folder,
    unreachable_reason,
)
from store.errors import ConfigError, LockedError, StateError, ValidationError
from store.locks import held_locks, migration_lock

log = logging.getLogger(__name__)

#: Rows read, written and compared at a time: the records table carries abstracts, so a
#: batch of this size stays a few megabytes.
BATCH = 500
#: APScheduler's job table, which it creates itself, outside Alembic.
JOBS_TABLE = "apscheduler_jobs"

Progress = Callable[[str, int], None]


@dataclass
class CopyReport:
    """What was copied: rows per table, in the order copied."""

    source: str
    target: str
    revision: str
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def describe(self) -> str:
        width = max(len(name) for name in self.rows) if self.rows else 0
        lines = [f"copied {self.source} -> {self.target} (schema {self.revision}): "
                 f"{self.total} rows in {len(self.rows)} tables, each compared with the "
                 "source"]
        lines += [f"  {name:<{width}}  {n}" for name, n in self.rows.items() if n]
        return "\n".join(lines)


def copy_tables() -> list[Table]:
    """The schema's tables in foreign-key order, with JSON columns that write None as SQL
    NULL, so that ``JSON.NULL`` can carry a stored JSON ``null`` across unchanged."""
    import store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

    copies = MetaData()
    tables = []
    for table in SQLModel.metadata.sorted_tables:
        copy = table.to_metadata(copies)
        for column in copy.columns:
            if isinstance(column.type, JSON):
                column.type = JSON(none_as_null=True)
        tables.append(copy)
    return tables


def jobs_table() -> Table:
    """The scheduler's job table as APScheduler defines it (and creates it when a worker
    starts): its jobs' next run times move with the review. Left behind, a slot that passed
    while the processes were stopped for the move (the daily poll, Monday's digest) was not
    run late once, as after any restart (``monitor.scheduler.build_scheduler``), but skipped
    to the next day or week."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    # No connection is made: the store keeps the URL and defines its table.
    store = SQLAlchemyJobStore(url="sqlite://", tablename=JOBS_TABLE, metadata=MetaData())
    table: Table = store.jobs_t
    store.engine.dispose()
    return table


def target_engine(url: str) -> Engine:
    """The engine of the database to copy into, refusing one that would keep nothing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from store.settings import UNENCODED_AT, supported_database_url, unencoded_at_in_userinfo

    try:  # the rule of MMLR_DATABASE_URL: a driver mmlr does not ship was an internal error
        url = supported_database_url(url)
    except ValueError as exc:
        raise ValidationError(f"the target: {exc}", hint="check TARGET_URL") from None
    if unencoded_at_in_userinfo(url):
        raise ValidationError(f"the target {UNENCODED_AT}")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: int() of a port, quoting the password
        raise ValidationError(f"the target {url.split('@')[-1]!r} is not a database URL",
                              hint="e.g. postgresql+psycopg://mmlr@db:5432/mmlr or "
                                   "sqlite:////srv/mmlr/mmlr.sqlite3") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValidationError("the target is an in-memory SQLite database: the copy would "
                              "be thrown away", hint="name a file: sqlite:////path/mmlr.sqlite3")
    try:
        # The folder of a SQLite file is made once the source is judged (copy_database).
        return make_engine(url, create_folder=False)
    except ConfigError as exc:  # it speaks of MMLR_DATABASE_URL, which is the source
        raise ValidationError(f"the target database: {exc.message}") from None


def copy_database(source: Engine, target: Engine, *,
                  progress: Progress | None = None) -> CopyReport:
    """Copy every table of ``source`` into the empty ``target`` (module docstring).
    ``progress(table, rows)`` is called after each batch written."""
    # The source is judged whole before the target is touched (a SQLite target's file and
    # folder were created, then a source at another schema refused).
    if _same_database(source, target):
        raise ValidationError(f"the target is the source database ({shown_url(source)})",
                              hint="name another, empty database")
    check_connection(source)
    current, head = schema_revisions(source)
    if not current:
        raise ConfigError(f"the source database {shown_url(source)} has no mmlr schema",
                          hint="check MMLR_DATABASE_URL")
    newer = [revision for revision in current if not known_revision(revision)]
    if newer:
        raise ConfigError(
            f"the source database {shown_url(source)} is at schema revision "
            f"{', '.join(newer)}, newer than this mmlr knows (up to {head}): a newer mmlr "
            "upgraded it",
            hint="upgrade mmlr here to that version (or run copy-db with the newer mmlr), "
                 "then copy")
    if tuple(current) != (head,):
        raise ConfigError(
            f"the source database {shown_url(source)} is at schema revision "
            f"{', '.join(current)}, this mmlr writes {head}",
            hint="run `mmlr init` on it first (it upgrades the schema), then copy")
    running = [lock for lock in held_locks(source) if not lock.orphaned]
    if running:
        names = ", ".join(f"{lock.name} ({lock.holder})" for lock in running)
        raise LockedError(f"a job is running on the source database: {names}",
                          hint="stop `mmlr serve`, `mmlr worker` and `mmlr web` first, so "
                               "that nothing is written during the copy")
    with _removed_if_new(target) as new_file:
        report = _copy_into(source, target, head, new_file=new_file is not None,
                            progress=progress)
    log.info("copied %d rows in %d tables from %s to %s", report.total, len(report.rows),
             report.source, report.target)
    return report


@contextmanager
def _removed_if_new(target: Engine) -> Iterator[Path | None]:
    """The SQLite file of ``target`` when it does not exist yet (None for one that does, or
    for PostgreSQL): removed, with the files SQLite makes beside it and the folders made for
    it, if the copy fails. A failed copy into a new file left an empty database there, which
    a retry had to be told about. A file that was there before is never removed."""
    url = target.url
    if url.get_backend_name() != "sqlite" or not url.database or is_sqlite_uri(url) \
            or url.database == ":memory:":
        yield None
        return
    path = Path(url.database).absolute()
    if os.path.lexists(path):  # a link, even one to nowhere, is someone's
        yield None
        return
    folders = []  # made by sqlite_folder: the missing ones, innermost first
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folders.append(folder)
        folder = folder.parent
    beside = [path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal")]
    there = {p for p in beside if os.path.lexists(p)}
    try:
        yield path
    except BaseException:
        target.dispose()  # SQLite's files are closed before they are removed
        for made in (path, *(p for p in beside if p not in there)):
            try:
                made.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove %s after the failed copy: %s", made, exc)
        for made in folders:
            try:
                made.rmdir()  # only when empty
            except OSError:
                break
        raise


def _copy_into(source: Engine, target: Engine, head: str | None, *, new_file: bool,
               progress: Progress | None) -> CopyReport:
    """The copy itself, once the source is judged (``copy_database``); ``new_file``: the
    target is a SQLite file the copy made, removed if it fails."""
    try:
        sqlite_folder(target.url)
        check_connection(target)
    except ConfigError as exc:  # its hint names MMLR_DATABASE_URL, which is the source
        raise ValidationError(f"the target: {exc.message}", hint="check TARGET_URL") from None
    tables = copy_tables()
    report = CopyReport(source=shown_url(source), target=shown_url(target), revision=head or "")
    with _snapshot(source) as src, target.connect() as dst:
        # One transaction for the schema and the rows (PostgreSQL's DDL is transactional;
        # SQLite's too, inside BEGIN IMMEDIATE), under the migration lock: the schema made in
        # a transaction of its own stayed behind when the copy failed, and the retry refused
        # the half-made target.
        migration_lock(dst)
        try:
            # Judged before the schema is touched: migrating first upgraded another review's
            # database to this mmlr's schema, and only then refused it.
            _refuse_unfit_target(dst, target, head)
            migrate_within(dst)
            if JOBS_TABLE in inspect(src).get_table_names():
                jobs = jobs_table()
                jobs.create(dst, checkfirst=True)
                tables.append(jobs)
            for table in tables:
                report.rows[table.name] = _copy_table(src, dst, table, progress)
            if dst.dialect.name == "postgresql":
                _continue_sequences(dst, tables)
            for table in tables:
                _compare_table(src, dst, table)
            dst.commit()
        except BaseException:
            dst.rollback()
            raise
    _check_source_unchanged(source, target, tables, report, new_file=new_file)
    return report


def _refuse_unfit_target(conn: Connection, target: Engine, head: str | None) -> None:
    """ValidationError unless the target is empty: no rows in any table (not only mmlr's),
    ``alembic_version`` included, whose row alone says another review's schema is there —
    except a schema at this mmlr's head with no rows at all, which is what the copy would
    make (an earlier copy's that failed, before copy-db made the schema in the copy's own
    transaction; or one an ``mmlr web`` made, started on the new database too soon). Nor may
    the target have tables of another application beside no mmlr schema."""
    from alembic.migration import MigrationContext

    from store.engine import _mmlr_table_names

    names = sorted(inspect(conn).get_table_names())
    filled: dict[str, int] = {}
    for name in names:
        n = conn.execute(select(func.count()).select_from(Table(name, MetaData()))).scalar_one()
        if n:
            filled[name] = n
    current = MigrationContext.configure(conn).get_current_heads()
    if filled.get("alembic_version") == 1 and tuple(current) == (head,):
        del filled["alembic_version"]  # an empty schema at head
    if filled:
        held = ", ".join(f"{name}: {n}" for name, n in filled.items())
        raise ValidationError(
            f"the target database {shown_url(target)} already holds data ({held}); copy-db "
            "fills an empty database only, it never merges two reviews",
            hint="create a new, empty database for the copy")
    foreign = sorted(set(names) - _mmlr_table_names() - {JOBS_TABLE})
    if foreign and not current:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                           if len(foreign) > 5 else "")
        raise ValidationError(
            f"the target database {shown_url(target)} has tables of another application "
            f"({listed}) and no mmlr schema; copy-db creates mmlr's tables in an mmlr or a "
            "new database only", hint="create a new, empty database for the copy")


def source_engine(url: str) -> Engine:
    """The engine of the database to copy from, which is only read: a SQLite file that does
    not exist is refused rather than created (with its folder), which a wrong
    ``MMLR_DATA_DIR`` did, leaving an empty mmlr.sqlite3 behind."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None  # make_engine says what is wrong with it
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:" and not is_sqlite_uri(parsed) \
                and not Path(path).is_file():
            raise ConfigError(f"the source database {path} does not exist",
                              hint="check MMLR_DATA_DIR and MMLR_DATABASE_URL: copy-db "
                                   "copies the configured database")
    return make_engine(url)


def _check_source_unchanged(source: Engine, target: Engine, tables: Sequence[Table],
                            report: CopyReport, *, new_file: bool = False) -> None:
    """The copy is the source as of its snapshot; rows written since (a web app left running,
    a curator's decision) are in the source only. Every such write adds a row somewhere (at
    least to the audit trail), so more rows now than copied means the target misses some.
    ``new_file``: the target is a SQLite file the copy made, which is then removed."""
    with source.connect() as conn:
        grown = {t.name: n - report.rows[t.name] for t in tables
                 if (n := conn.execute(select(func.count()).select_from(t)).scalar_one())
                 != report.rows[t.name]}
    if grown:
        changes = ", ".join(f"{name}: {n:+d}" for name, n in grown.items())
        if new_file:
            raise StateError(
                f"the source database changed during the copy ({changes} rows): the copy "
                f"missed those writes and {shown_url(target)} was removed",
                hint="stop every mmlr process on the source and copy again")
        raise StateError(
            f"the source database changed during the copy ({changes} rows): the copy in "
            f"{shown_url(target)} misses those writes and must not be used",
            hint="stop every mmlr process on the source, empty the target (drop and create "
                 "it again) and copy again")


def _same_database(a: Engine, b: Engine) -> bool:
    ua, ub = a.url, b.url
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        return bool(ua.database and ub.database) and \
            Path(str(ua.database)).resolve() == Path(str(ub.database)).resolve()
    return (ua.host, ua.port or 5432, ua.database) == (ub.host, ub.port or 5432, ub.database)


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection that sees the source as of one moment, for every table."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, \
                conn.begin():
            yield conn
        return
    with engine.connect() as conn:
        # pysqlite starts no transaction for a SELECT: without this BEGIN each table would
        # be read as of its own moment.
        conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()


def _key(table: Table) -> Column[Any]:
    (key,) = table.primary_key.columns  # every mmlr table has a one-column key
    return key


def _ordered_key(conn: Connection, table: Table) -> ColumnElement[Any]:
    """The key as rows are ordered and paged by, the same on both engines: a text key in
    byte order (``COLLATE "C"`` on PostgreSQL, SQLite's own BINARY), where a PostgreSQL
    database's collation (en_US.UTF-8, ICU) put 'a' before 'B' and SQLite after, so that
    the comparison of a copy between them found a difference at the first such key."""
    key = _key(table)
    if conn.dialect.name == "postgresql" and not isinstance(key.type, Integer):
        return key.collate("C")
    return key


def _batches(conn: Connection, table: Table) -> Iterator[Sequence[Any]]:
    """The table's rows in key order (byte order for text: :func:`_ordered_key`), a batch
    at a time (keyset paging), each row with one more value per JSON column: whether it is
    SQL NULL."""
    key = _ordered_key(conn, table)
    key_index = list(table.columns).index(_key(table))
    json_columns = [c for c in table.columns if isinstance(c.type, JSON)]
    query = select(*table.columns, *(c.is_(None) for c in json_columns)).order_by(key)
    last: Any = None
    while True:
        page = conn.execute((query if last is None else query.where(key > last))
                            .limit(BATCH)).all()
        if not page:
            return
        yield page
        last = page[-1][key_index]


def _values(table: Table, row: Sequence[Any]) -> dict[str, Any]:
    columns = list(table.columns)
    values = dict(zip((c.name for c in columns), row[:len(columns)], strict=True))
    json_columns = [c for c in columns if isinstance(c.type, JSON)]
    for column, is_sql_null in zip(json_columns, row[len(columns):], strict=True):
        if values[column.name] is None and not is_sql_null:
            values[column.name] = JSON.NULL  # a stored JSON null, not a missing value
    return values


def _copy_table(src: Connection, dst: Connection, table: Table,
                progress: Progress | None) -> int:
    copied = 0
    for page in _batches(src, table):
        rows = [_values(table, row) for row in page]
        try:
            # A savepoint per batch: after a refusal PostgreSQL's transaction takes no more
            # statements until rolled back to one, and the rows are then tried one by one.
            with dst.begin_nested():
                dst.execute(table.insert(), rows)
        except DBAPIError as exc:  # a value the target refuses (e.g. NUL in PostgreSQL text)
            raise _refusal(dst, table, rows, exc) from None
        copied += len(page)
        if progress is not None:
            progress(table.name, len(page))
    return copied


def _reason(exc: DBAPIError) -> str:
    return unreachable_reason(exc) if exc.orig else type(exc).__name__


def _refusal(dst: Connection, table: Table, rows: Sequence[dict[str, Any]],
             exc: DBAPIError) -> ValidationError:
    """The error naming the row of a refused batch that the target refuses, found by
    writing the batch's rows one at a time (each in a savepoint; the whole transaction is
    rolled back after): a batch's key range left a person to search 500 rows."""
    key = _key(table).name
    for values in rows:
        try:
            with dst.begin_nested():
                dst.execute(table.insert(), values)
        except DBAPIError as refused:
            return ValidationError(
                f"the target refused the row of {table.name} with {key} {values[key]!r}: "
                f"{_reason(refused)}; nothing was committed to the target",
                hint="put that row right in the source, then copy again")
    # Each row taken alone (the batch failed as a whole): its range, at least.
    return ValidationError(
        f"the target refused a row of {table.name} ({key} {rows[0][key]!r} to "
        f"{rows[-1][key]!r}): {_reason(exc)}; nothing was committed to the target")


def _continue_sequences(dst: Connection, tables: Sequence[Table]) -> None:
    """Set each id sequence past the copied rows: they were inserted with their ids, which
    a PostgreSQL sequence does not see."""
    for table in tables:
        key = _key(table)
        if not isinstance(key.type, Integer):
            continue  # pg_get_serial_sequence is NULL for a key without one (records.pmid)
        dst.execute(text(
            f'SELECT setval(pg_get_serial_sequence(:table, :column), '
            f'COALESCE((SELECT MAX("{key.name}") FROM "{table.name}"), 0) + 1, false)'),
            {"table": table.name, "column": key.name})


def _compare_table(src: Connection, dst: Connection, table: Table) -> None:
    """Every row of the target equals the source's (ValidationError naming the first that
    does not): the proof that nothing was lost or changed on the way."""
    key_index = list(table.columns).index(_key(table))
    theirs = _rows(dst, table)
    for ours in _rows(src, table):
        copied = next(theirs, None)
        if copied != ours:
            where = ours[key_index]
            raise ValidationError(
                f"the copy of {table.name} differs from the source at key {where!r}; "
                "nothing was committed to the target",
                hint="report this with the table and key: the target is left as it was")
    if next(theirs, None) is not None:
        raise ValidationError(f"the copy of {table.name} has more rows than the source; "
                              "nothing was committed to the target")


def _rows(conn: Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    for page in _batches(conn, table):
        yield from (tuple(row) for row in page)
