"""Engines and sessions, built by factories from settings (never at import time)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    OperationalError,
    ProgrammingError,
)
from sqlmodel import Session, create_engine

from store.errors import ConfigError
from store.settings import Settings, masked, remember_password

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]

#: Alembic's command API keeps the running migration in module globals (``alembic.context``,
#: ``alembic.op``): two threads migrating at once, such as two scheduler jobs firing in the
#: same minute (each builds its context), tear down each other's (KeyError: 'script') and
#: the job is lost. One migration at a time per process.
_MIGRATING = threading.Lock()


def shown_url(url: str | URL | Engine) -> str:
    """A database URL as messages, logs and reports name it: never with its password (the
    URL may carry one; ``***`` takes its place, and the user name too when the URL cannot be
    read as it stands)."""
    from store.settings import masked_database_url, unencoded_at_in_userinfo

    if isinstance(url, Engine):
        url = url.url
    raw = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    if unencoded_at_in_userinfo(raw):
        # Parsed at the first '@', a password holding one ends up partly in the host:
        # everything before the last '@' goes.
        return masked(_masked_query(masked_database_url(raw)), raw)
    try:
        # masked: the password written again elsewhere in the URL (a query value) goes too
        return masked(_masked_query(make_url(raw).render_as_string(hide_password=True)), raw)
    except (ArgumentError, ValueError):  # ValueError: int() of a port, quoting the URL
        return masked(_masked_query(masked_database_url(raw)), raw)


def _masked_query(url: str) -> str:
    """``url`` with the value of each query parameter whose name holds "password"
    (``?password=``, ``?sslpassword=``: libpq reads them there too) as ``***``."""
    base, question, query = url.partition("?")
    if not question:
        return url
    shown = []
    for item in query.split("&"):
        key, equals, _value = item.partition("=")
        if equals and "password" in unquote_plus(key).lower():
            item = f"{key}=***"
        shown.append(item)
    return base + question + "&".join(shown)


#: The SQL function, on every SQLite connection, that lower-cases text as Python does: every
#: letter, where SQLite's own ``lower`` folds ASCII only (``screening.record_search``).
SQLITE_LOWER = "mmlr_lower"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the web app read while the worker writes; busy_timeout waits for the writer
    # instead of failing at once; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    dbapi_conn.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)


def is_sqlite_uri(url: URL) -> bool:
    """Whether a SQLite URL names its file as a URI (``sqlite:///file:PATH?uri=true``), which
    SQLite reads itself: its database is no path."""
    return str(url.query.get("uri", "")).lower() in ("true", "1", "yes", "on")


def sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite database file (ConfigError when it cannot be made)."""
    # A URI filename is SQLite's to read, and ``mode=ro`` or ``mode=memory`` must create
    # nothing: taking it for a path made a folder named "file:" in the working folder.
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" \
            or is_sqlite_uri(url):
        return
    folder = Path(url.database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file on the way, a read-only or virtual place
        raise ConfigError(
            f"cannot create the folder {folder} of the SQLite database: "
            f"{exc.strerror or exc}", hint="check MMLR_DATABASE_URL") from None


def make_engine(settings: Settings | str, *, echo: bool = False,
                create_folder: bool = True) -> Engine:
    """Build an engine for the settings' database (SQLite in WAL mode, or PostgreSQL), and
    the folder of a SQLite file unless ``create_folder`` is False (:func:`sqlite_folder`
    later, or the first connection fails)."""
    url = settings if isinstance(settings, str) else settings.db_url
    remember_password(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"MMLR_DATABASE_URL is not a valid database URL: {masked(str(exc))}") from None
    if parsed.get_backend_name() == "sqlite":
        if create_folder:
            sqlite_folder(parsed)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            url, echo=echo, pool_pre_ping=True, connect_args={"connect_timeout": 10}
        )
    else:
        raise ConfigError(f"unsupported database backend {parsed.get_backend_name()!r}")
    return engine


def check_connection(engine: Engine) -> None:
    """Fail with one clear line when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DatabaseError as exc:  # OperationalError, or SQLite's "file is not a database"
        reason = unreachable_reason(exc) if exc.orig else "connection failed"
        if database_read_only(exc):
            # A SQLite file in WAL mode is not even read without writing its -wal/-shm files
            # (a read-only folder): the URL is right, the permissions are not.
            raise ConfigError(f"cannot open the database {shown_url(engine)}: {reason}",
                              hint=read_only_hint(engine.url)) from None
        raise ConfigError(
            f"cannot connect to the database {shown_url(engine)}: "
            f"{reason}",
            hint="check MMLR_DATABASE_URL",
        ) from None


#: SQLSTATE classes of a server that cannot be reached or went away: 08 connection exception,
#: 57P operator intervention (an administrator's shutdown, a server starting up or crashing).
_UNREACHABLE_SQLSTATES = ("08", "57P")


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database server cannot be reached or dropped the connection
    (restarted, stopped, the network gone): an outage, reported in one line and over once the
    server is back (the pool's pre-ping replaces dead connections), not a bug with a
    traceback. A failed connect has no SQLSTATE. A deadlock or serialization failure (class
    40, also an OperationalError) and every SQLite error are not outages."""
    if not isinstance(exc, OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    if not type(exc.orig).__module__.startswith("psycopg"):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(_UNREACHABLE_SQLSTATES)


#: SQLite's primary result code for a write refused because the file (or its folder, or the
#: -wal/-shm files beside it) may not be written; the extended codes share its low byte.
_SQLITE_READONLY = 8
#: SQLSTATE of a write sent to a PostgreSQL server that only reads (a standby replica, or
#: default_transaction_read_only).
_PG_READ_ONLY = "25006"


def database_read_only(exc: BaseException) -> bool:
    """Whether ``exc`` is a write the database refused because it is read-only: a file the
    user running mmlr may not write, or a standby server. A setup problem to name in one
    line, not a bug with a traceback."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_READONLY
    return getattr(orig, "sqlstate", None) == _PG_READ_ONLY


#: SQLite's primary result codes for a database another connection holds: SQLITE_BUSY (the
#: busy timeout ran out while another process kept its write lock, e.g. ``BEGIN EXCLUSIVE``)
#: and SQLITE_LOCKED; the extended codes share the low byte.
_SQLITE_BUSY = (5, 6)
#: SQLSTATE lock_not_available (a ``lock_timeout`` or ``NOWAIT`` gave up on another's lock).
_PG_LOCK_NOT_AVAILABLE = "55P03"


def database_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement that gave up waiting for a lock another process holds on
    the database ("database is locked"): nothing wrong with mmlr or its set-up, over when that
    process ends, so one line rather than an internal error with a traceback."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_BUSY
    return getattr(orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


def read_only_hint(engine_url: str | URL) -> str:
    """What to do about :func:`database_read_only`, for the engine at ``engine_url``."""
    url = make_url(engine_url) if isinstance(engine_url, str) else engine_url
    if url.get_backend_name() == "sqlite" and url.database:
        path = url.database.removeprefix("file:")  # a URI filename (?mode=ro&uri=true)
        return (f"give the user running mmlr write access to {path} and its folder: "
                "SQLite writes -wal and -shm files beside it")
    return "point MMLR_DATABASE_URL at the primary server, not a read-only standby"


def unreachable_reason(exc: BaseException) -> str:
    """The first line of the driver's message for :func:`database_unreachable` errors (no SQL,
    no parameters), :func:`masked`: psycopg may quote its connection string, password and
    all (``invalid connection option`` … ``password=…``)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return masked(lines[0]) if lines else type(orig).__name__


def make_session_factory(engine: Engine) -> SessionFactory:
    def factory() -> Session:
        return Session(engine, expire_on_commit=False)

    return factory


@contextmanager
def session_scope(factory: SessionFactory) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection_engine"] = engine
    return cfg


def schema_revisions(engine: Engine) -> tuple[tuple[str, ...], str | None]:
    """(the Alembic revisions the database is at, empty when it has no mmlr schema; the head
    this code expects), read without changing anything."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return tuple(current), script.get_current_head()


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (not one a newer mmlr wrote)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        ScriptDirectory(str(Path(__file__).parent / "migrations")).get_revision(revision)
    except CommandError:
        return False
    return True


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(engine)
    check_connection(engine)
    _refuse_newer_schema(engine, ScriptDirectory.from_config(cfg))
    _refuse_foreign_tables(engine)
    _upgrade(cfg, engine)
    log.info("schema at head on %s", shown_url(engine))


def migrate_within(conn: Connection) -> None:
    """Create or upgrade the schema to the newest Alembic revision inside ``conn``'s
    transaction, which the caller has begun (under :func:`store.locks.migration_lock`) and
    ends: its rollback undoes the schema too (PostgreSQL's DDL is transactional, and
    SQLite's inside ``BEGIN IMMEDIATE``). ``mmlr copy-db`` creates the target's schema and
    copies the rows in one transaction, so a failed copy leaves no half-made target. The
    caller judges the database first (:func:`migrate` refuses a newer or a foreign one)."""
    cfg = _alembic_config(conn.engine)
    cfg.attributes["connection"] = conn
    _upgrade(cfg, conn.engine)


def _upgrade(cfg: Any, engine: Engine) -> None:
    from alembic import command

    try:
        with _MIGRATING:
            command.upgrade(cfg, "head")
    except ProgrammingError as exc:
        # SQLSTATE 42501: since PostgreSQL 15 only a database's owner may create tables in
        # its public schema, so a role that may merely connect failed here as an internal error.
        if getattr(exc.orig, "sqlstate", None) != "42501":
            raise
        reason = unreachable_reason(exc)
        user = engine.url.username or "the user"
        raise ConfigError(
            f"the database user cannot create mmlr's tables in "
            f"{shown_url(engine)}: {reason}",
            hint=f"make {user} the database's owner, or GRANT CREATE ON SCHEMA public TO {user}",
        ) from None


def _mmlr_table_names() -> set[str]:
    from sqlmodel import SQLModel

    import store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

    return set(SQLModel.metadata.tables) | {"alembic_version"}


def _refuse_foreign_tables(engine: Engine) -> None:
    """ConfigError when the database has tables but no mmlr schema at all.

    That is another program's database (a mistyped MMLR_DATABASE_URL or MMLR_DATA_DIR):
    creating mmlr's tables beside its own would alter a file or schema that is not ours, and
    the command would then report an empty review as if all were well. Nothing is changed.
    """
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_heads():
            return  # an mmlr database, at any revision
        found = set(inspect(conn).get_table_names())
    # mmlr's own names are not foreign: a first migration stopped half-way leaves some.
    tables = sorted(found - _mmlr_table_names())
    if tables:
        listed = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise ConfigError(
            f"the database {shown_url(engine)} is not an mmlr database: it has other tables "
            f"({listed}) and no mmlr schema",
            hint="point MMLR_DATABASE_URL at an mmlr database or a new, empty one; nothing "
                 "was changed",
        )


def _refuse_newer_schema(engine: Engine, script: Any) -> None:
    """ConfigError when the database is at a revision this code does not know.

    That is a database a newer mmlr upgraded, opened by an older one (a rolled-back image, an
    old checkout): Alembic would stop with "Can't locate revision", an internal error, and
    this code would misread the newer tables if it went on. Nothing is changed.
    """
    from alembic.migration import MigrationContext
    from alembic.util import CommandError

    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            raise ConfigError(
                f"the database {shown_url(engine)} is at schema "
                f"revision {revision}, newer than this mmlr knows (up to "
                f"{script.get_current_head()}): a newer mmlr upgraded it",
                hint="run the newer mmlr, or restore a backup taken before the upgrade",
            ) from None
