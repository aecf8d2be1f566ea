"""Database-level job locks: two workers (or ``serve`` plus ``worker``) never run one job at once.

PostgreSQL: a session-level ``pg_try_advisory_lock`` held on a dedicated connection for the
duration of the job; the server releases it if the process dies, so a crash never leaves a
stale lock. SQLite has no advisory locks: a lease row in ``job_locks`` is taken inside
``BEGIN IMMEDIATE`` (which serialises writers across processes); an expired lease, or one
whose holder process on this host is gone (SIGKILL; or its pid now names another process, as
after a container restart), may be taken over. Long jobs call
``renew()`` after every step to extend their lease (SQLite) or to stop when the connection
holding the advisory lock broke and the lock with it (PostgreSQL restarted); a job that must
write nothing once its lock is lost writes through ``JobLease.writing()``, whose commit is
made only under the lock.

Migrations have their own lock, held for the migration's transaction (:func:`migration_lock`),
and so does ``mmlr init`` (:func:`transaction_lock`).
:func:`claim_once` records a one-off claim (a scheduler tick run) in the same table.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, false, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from store.errors import LockedError, MmlrError
from store.ids import parse_id
from store.models import JobLock

log = logging.getLogger(__name__)

#: Every lock name ``job_lock`` is taken under: a PostgreSQL advisory lock is a number, and
#: :func:`held_locks` needs the names to tell ours apart and say which job holds one.
JOB_NAMES = ("poll", "screen", "pool", "digest", "digest-delivery")
#: Names of :func:`claim_once` rows (scheduler ticks): claims, not locks anyone waits for.
CLAIM_PREFIX = "tick:"


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"mmlr:{name}".encode()).digest()[:8], "big", signed=True)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: The lease table as a Core Table (SQLModel classes do not declare __table__ to mypy).
_LOCK_TABLE = JobLock.metadata.tables[JobLock.__tablename__]


class JobLease:
    """The held lock; ``renew()`` extends a SQLite lease, and on PostgreSQL checks that the
    advisory lock is still held (``conn``: the connection holding it)."""

    def __init__(self, engine: Engine, name: str, holder: str, ttl: float,
                 conn: Connection | None = None) -> None:
        self.engine, self.name, self.holder, self.ttl = engine, name, holder, ttl
        self.conn = conn

    def renew(self) -> None:
        """Extend the lease; MmlrError when the lock was lost.

        PostgreSQL ends a session-level advisory lock with its connection: after a server
        restart between two batches the job's other connections reconnect (pre-ping) and it
        would go on without its lock while another worker, finding the lock free, resumes the
        same poll run. Long jobs renew after every step, so they stop at the next one."""
        if self.engine.dialect.name != "sqlite":
            if self.conn is not None and not _pg_still_held(self.conn, self.name):
                raise self._lost()
            return
        with self.engine.begin() as conn:
            if not self._extend(conn):
                raise self._lost()

    def _extend(self, conn: Connection) -> bool:
        """Extend this holder's SQLite lease by its ttl; False when the row is no longer its
        own (the lease expired and another process took it over)."""
        table = _LOCK_TABLE
        renewed = conn.execute(update(table).where(
            table.c.name == self.name, table.c.holder == self.holder).values(
            expires_at=datetime.now(UTC) + timedelta(seconds=self.ttl)))
        return renewed.rowcount == 1

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose writes commit only while the lock is held: the check and the
        commit are one step. MmlrError (nothing written) when the lock was lost.

        Checking first and committing on another connection leaves a gap: a poll renewed
        after storing its batch, so the batch it fetched while another worker took the lock
        over was stored by both. PostgreSQL: the session's transaction runs on the very
        connection that holds the session-level advisory lock and first asks it whether it
        still does; that lock lives as long as the connection, so a commit made on it was
        made under the lock (a broken connection cannot commit). SQLite: the transaction's
        first statement extends this holder's lease row; it matches no row once another
        process took the lease over, and it holds the database's write lock from then until
        the commit, so nobody can take the lease over in between."""
        if self.engine.dialect.name != "sqlite":
            conn = self.conn
            if conn is None:
                raise MmlrError(f"lock {self.name!r} has no connection to write on")
            if conn.invalidated:  # a Connection reconnects on next use, without the lock
                raise self._lost()
            session = Session(bind=conn, expire_on_commit=False)
            try:
                if not _pg_holds(session.connection(), self.name):
                    raise self._lost()
                yield session
            except OperationalError as exc:
                from store.engine import database_unreachable

                if database_unreachable(exc):
                    raise self._lost() from None
                raise
            finally:
                session.close()  # rolls back what was not committed
            return
        with Session(self.engine, expire_on_commit=False) as session:
            if not self._extend(session.connection()):
                session.rollback()
                raise self._lost()
            yield session

    def _lost(self) -> MmlrError:
        if self.engine.dialect.name == "sqlite":
            why = "its lease expired and another process took it over"
        else:
            why = "the database connection holding it broke (PostgreSQL restarted?)"
        return MmlrError(f"lost the lock {self.name!r}: {why}, and another worker may now "
                         "hold it; stopping",
                         hint="the next run resumes from the last checkpoint")


def _process_start(pid: int) -> str | None:
    """An identity of process ``pid``'s start: the kernel's boot id and the process's start
    time in clock ticks since boot (``/proc``), or None where ``/proc`` cannot tell.

    A pid alone does not name a process for long: in a container restarted after a crash the
    worker is again pid 1 (or 7) on the same host name, so a lease of the crashed run would
    look held by a live process until it expires — an hour of no polling. The start time
    tells the two apart; the boot id covers a rebooted host whose counters start again."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip().replace("-", "")[:8]
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    # Field 22 of stat is the start time; fields[0] here is field 3 (the state).
    return f"{boot}.{fields[19]}" if len(fields) > 19 else None


def _holder() -> str:
    """``host:pid:start:nonce`` (start: :func:`_process_start`, empty where unknown)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or ''}:{uuid.uuid4().hex[:8]}"


def _holder_dead(holder: str) -> bool:
    """True when the holder is a process of this host that no longer exists (e.g. SIGKILLed),
    or whose pid now belongs to another process (a restarted container, a reused pid).
    Holders written before the start was recorded (``host:pid:nonce``) are judged by the pid
    alone."""
    host, _, rest = holder.partition(":")
    parts = rest.split(":")
    pid = parse_id(parts[0])  # ASCII digits in an int's range: os.kill took "²" and 20 digits
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's: its start time still tells whether it is the holder
    recorded = parts[1] if len(parts) == 3 else ""
    if not recorded:
        return False
    current = _process_start(pid)
    return current is not None and current != recorded


def _sqlite_acquire(conn: Connection, name: str, holder: str, ttl: float) -> None:
    table = _LOCK_TABLE
    now = datetime.now(UTC)
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        row = conn.execute(select(table.c.holder, table.c.expires_at)
                           .where(table.c.name == name)).first()
        if row is not None and _aware(row.expires_at) > now and not _holder_dead(row.holder):
            conn.exec_driver_sql("ROLLBACK")
            raise LockedError(
                f"job {name!r} is already running (held by {row.holder} until "
                f"{_aware(row.expires_at):%Y-%m-%d %H:%M:%S} UTC)",
                hint="wait for it to finish; a crashed holder's lease expires by itself",
            )
        values = {"holder": holder, "acquired_at": now, "expires_at": now + timedelta(seconds=ttl)}
        if row is None:
            conn.execute(insert(table).values(name=name, **values))
        else:
            log.warning("lock %r: taking over the expired or orphaned lease of %s", name,
                        row.holder)
            conn.execute(update(table).where(table.c.name == name).values(**values))
        conn.exec_driver_sql("COMMIT")
    except LockedError:
        raise
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise


def claim_once(engine: Engine, name: str, *, prefix: str, keep: timedelta) -> bool:
    """Claim ``name`` (which starts with ``prefix``) for this process: False when another
    process claimed it first. The claim is a ``job_locks`` row never released; rows of
    ``prefix`` older than ``keep`` are deleted on the way."""
    table = _LOCK_TABLE
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.name.startswith(prefix, autoescape=True),
                                         table.c.expires_at < now))
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values(name=name, holder=_holder(), acquired_at=now,
                                              expires_at=now + keep))
    except IntegrityError:  # the primary key: someone else's row
        return False
    return True


def migration_lock(conn: Connection) -> None:
    """Begin ``conn``'s transaction holding the migration lock, waiting for another process's
    migration to commit first.

    Every entry point migrates at start, so `mmlr web` and `mmlr worker` started together on
    a new database (or after an upgrade) would both create the same tables and one would fail.
    Waiting, then running Alembic in this one transaction, makes the second find the schema at
    head. PostgreSQL: a transaction-level advisory lock. SQLite: ``BEGIN IMMEDIATE`` takes the
    database's write lock (the busy timeout waits for it), and SQLite's DDL is transactional.
    """
    transaction_lock(conn, "migrate")


def transaction_lock(conn: Connection, name: str) -> None:
    """Begin ``conn``'s transaction holding the lock ``name`` until it ends, waiting for
    another process's transaction under it to end first (so that this one then reads what
    that one committed). PostgreSQL: a transaction-level advisory lock. SQLite: ``BEGIN
    IMMEDIATE``, the database's write lock (the busy timeout waits for it), whatever the
    name."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _advisory_key(name)})
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_transaction_lock(session: Session, name: str) -> None:
    """Hold the lock ``name`` until ``session``'s transaction ends, waiting for another
    transaction under it to end first (every read after it sees what that one committed).
    PostgreSQL: a transaction-level advisory lock. SQLite: a write that matches no row, which
    starts the write transaction (the database's one write lock, whatever the name; the busy
    timeout waits for it), as ``store.record_lock`` does."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _advisory_key(name)})
    else:
        table = _LOCK_TABLE
        session.execute(update(table).where(false()).values(name=table.c.name))


@contextmanager
def job_lock(engine: Engine, name: str, *, ttl: float = 3600.0) -> Iterator[JobLease]:
    """Hold the lock ``name`` for the block; raise LockedError at once if someone else has it."""
    holder = _holder()
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            key = _advisory_key(name)
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()  # the lock is session-level: no transaction stays open while we work
            if not got:
                raise LockedError(f"job {name!r} is already running in another worker",
                                  hint="wait for it to finish")
            try:
                yield JobLease(engine, name, holder, ttl, conn)
            finally:
                _pg_unlock(conn, name, key)
        finally:
            conn.close()
        return
    # SQLite: AUTOCOMMIT hands transaction control to us, so BEGIN IMMEDIATE is really sent.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        _sqlite_acquire(conn, name, holder, ttl)
    try:
        yield JobLease(engine, name, holder, ttl)
    finally:
        _sqlite_release(engine, name, holder)


def _sqlite_release(engine: Engine, name: str, holder: str) -> None:
    """Delete the lease row. A database another process keeps locked past the busy timeout
    leaves it: raising then would replace the job's own error (which says what it did and
    did not record) with one about the lock. The lease is taken over when it expires or
    once this process has ended."""
    from store.engine import database_locked

    table = _LOCK_TABLE
    try:
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.name == name, table.c.holder == holder))
    except OperationalError as exc:
        if not database_locked(exc):
            raise
        log.warning("lock %r: not released, the database is locked by another process; it is "
                    "taken over once its lease expires or this process has ended", name)


def _pg_still_held(conn: Connection, name: str) -> bool:
    """Whether ``conn``'s session still holds the advisory lock ``name`` (False when the
    connection is gone, and the lock with it)."""
    from store.engine import database_unreachable

    if conn.invalidated:
        return False
    try:
        held = _pg_holds(conn, name)
        conn.commit()
    except OperationalError as exc:
        if not database_unreachable(exc):
            raise
        return False
    return held


def _pg_holds(conn: Connection, name: str) -> bool:
    """Whether ``conn``'s backend holds the advisory lock ``name`` (in its transaction, if
    one is open: nothing is committed)."""
    unsigned = _advisory_key(name) & ((1 << 64) - 1)  # pg_locks splits it: see _pg_held_locks
    query = text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                 "AND granted AND objsubid = 1 AND pid = pg_backend_pid() "
                 "AND classid::bigint = :hi AND objid::bigint = :lo)")
    return bool(conn.execute(query, {"hi": unsigned >> 32,
                                     "lo": unsigned & 0xFFFFFFFF}).scalar())


def _pg_unlock(conn: Connection, name: str, key: int) -> None:
    """Release an advisory lock, unless the server already has: a session-level lock ends with
    its connection, so when the server restarted or the connection broke during the job there
    is nothing left to release. Raising then would replace the job's own error (the database
    gone) with one about the unlock."""
    from store.engine import database_unreachable

    if conn.invalidated:  # its loss was already seen (a renewal): nothing to release
        log.warning("lock %r: the connection holding it is gone, and the lock with it", name)
        return
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()
    except OperationalError as exc:
        if not database_unreachable(exc):
            raise
        log.warning("lock %r: the connection holding it is gone, and the lock with it", name)


@dataclass(frozen=True)
class HeldLock:
    """A job lock as :func:`held_locks` reads it. ``since``/``expires_at`` are known on SQLite
    only; ``orphaned``: a lease that expired or whose holder process on this host is gone,
    which the next run of the job takes over."""

    name: str
    holder: str
    since: datetime | None
    expires_at: datetime | None
    orphaned: bool


def held_locks(engine: Engine) -> list[HeldLock]:
    """The job locks held now, by name, without taking or changing any.

    SQLite: the lease rows of ``job_locks`` (scheduler claims left out). PostgreSQL: the
    granted advisory locks of this database whose key is one of :data:`JOB_NAMES`, held by a
    server backend (pid, client address and application as ``pg_stat_activity`` shows them;
    another role's session may show only its pid)."""
    if engine.dialect.name == "postgresql":
        return _pg_held_locks(engine)
    table = _LOCK_TABLE
    now = datetime.now(UTC)
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.name, table.c.holder, table.c.acquired_at,
                                   table.c.expires_at)
                            .where(~table.c.name.startswith(CLAIM_PREFIX, autoescape=True))
                            .order_by(table.c.name)).all()
    return [HeldLock(name=r.name, holder=r.holder, since=_aware(r.acquired_at),
                     expires_at=_aware(r.expires_at),
                     orphaned=_aware(r.expires_at) <= now or _holder_dead(r.holder))
            for r in rows]


def held_by_a_live_process(engine: Engine, name: str) -> bool:
    """Whether a live process holds the job lock ``name`` now (an orphaned SQLite lease, of a
    process that died or whose lease expired, is no holder)."""
    return any(lock.name == name and not lock.orphaned for lock in held_locks(engine))


def _pg_held_locks(engine: Engine) -> list[HeldLock]:
    names = {_advisory_key(name): name for name in JOB_NAMES}
    # A bigint advisory key is split in pg_locks: classid the high 32 bits, objid the low 32,
    # objsubid 1 (2 marks the two-int4 form, which mmlr never uses).
    query = text(
        "SELECT l.classid::bigint AS hi, l.objid::bigint AS lo, l.pid, "
        "a.client_addr::text AS addr, a.application_name AS app "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out: list[HeldLock] = []
    for row in rows:
        unsigned = (int(row.hi) << 32) | int(row.lo)
        key = unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned
        name = names.get(key)
        if name is None:  # another application's advisory lock, or the migration's
            continue
        where = ", ".join(part for part in (row.addr, row.app) if part)
        holder = f"PostgreSQL backend pid {row.pid}" + (f" ({where})" if where else "")
        out.append(HeldLock(name=name, holder=holder, since=None, expires_at=None,
                            orphaned=False))
    return sorted(out, key=lambda lock: lock.name)
