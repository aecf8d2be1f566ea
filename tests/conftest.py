"""Shared fixtures: a fresh database per test (SQLite file, or a fresh PostgreSQL database
when ``MMLR_TEST_DATABASE_URL`` points at a server), at the head schema unless the test is
marked ``empty_database``, settings in a temporary data dir, the
shared third-party data, and a guard that keeps a developer's ``MMLR_*`` environment out;
plus ``cli_env``/``run_cli`` for tests that run ``mmlr`` commands.

``CI=true`` turns "skip because a service or ../shared is missing" into a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MMLR_SHARED_DIR", ROOT.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("MMLR_TEST_DATABASE_URL", "")


#: Set by .ci/run for its PostgreSQL run: only the tests that use the run's database run there.
DATABASE_TESTS_ONLY = os.environ.get("MMLR_TEST_DATABASE_TESTS_ONLY", "") == "1"


def uses_the_run_database(item: pytest.Item) -> bool:
    """Whether a test touches the database of the run: through ``db_url`` (which ``settings``,
    ``ctx`` and every app fixture depend on), the server itself (``pg_admin_url``), or, marked
    ``own_databases``, by making PostgreSQL databases of its own from ``PG_URL``. The others
    (pure computation, parsers, R comparisons, CLI runs on their own SQLite file) run the same
    code whatever ``MMLR_TEST_DATABASE_URL`` says. The marker is explicit, not guessed from a
    module's names: ``test_suite_split`` checks that every module reaching the server another
    way carries it."""
    if {"db_url", "pg_admin_url"} & set(getattr(item, "fixturenames", ())):
        return True
    return item.get_closest_marker("own_databases") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With PostgreSQL and ``MMLR_TEST_DATABASE_TESTS_ONLY=1`` (CI's PostgreSQL run, beside
    its SQLite run of the whole suite), deselect the tests that do not use the run's
    database: they would run the very same code a second time. pytest reports them as
    deselected."""
    if not (PG_URL and DATABASE_TESTS_ONLY):
        return
    kept = [item for item in items if uses_the_run_database(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if not uses_the_run_database(i)])
        items[:] = kept


def need(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing; in CI the prerequisite is required."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this process's, minus every ``MMLR_*`` setting
    (a developer's own configuration must not leak into a test) except ``MMLR_TEST_*`` (which
    only configures the test run, never the CLI), then ``extra`` on top."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MMLR_") or k.startswith("MMLR_TEST_")
    }
    # A subprocess that hangs is made to dump its threads' stacks (``stopped``, SIGABRT).
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra)
    return env


#: ``mmlr ARGS…`` with a thread that, once the file ``argv[1]`` exists and the main thread is
#: asleep (at one line for 0.3 s), sends the signal ``argv[2]`` to itself: what the kernel may
#: do with a signal sent to the process (it picks any thread that does not block it, e.g. one
#: of numpy's OpenBLAS threads). A main thread still running would handle it at once.
_SIGNAL_FROM_ANOTHER_THREAD = """
import signal, sys, threading, time
from pathlib import Path

def main_thread_asleep():
    seen, since = None, time.monotonic()
    while time.monotonic() - since < 0.3:
        frame = sys._current_frames().get(threading.main_thread().ident)
        here = (frame.f_code, frame.f_lineno) if frame else None
        if here != seen:
            seen, since = here, time.monotonic()
        time.sleep(0.02)

def signal_from_here():
    while not Path(sys.argv[1]).exists():
        time.sleep(0.05)
    main_thread_asleep()
    signal.pthread_kill(threading.get_ident(), int(sys.argv[2]))

threading.Thread(target=signal_from_here, daemon=True).start()
from monitor.cli import main
sys.exit(main(sys.argv[3:]))
"""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mmlr_signalled_from_another_thread(
        args: list[str], *, signum: int, go: Path, env: dict[str, str],
) -> subprocess.Popen[str]:
    """``mmlr *args`` in a process of its own whose thread other than the main one sends
    itself ``signum`` once the test creates ``go``. The caller reads the output."""
    return subprocess.Popen(
        [sys.executable, "-c", _SIGNAL_FROM_ANOTHER_THREAD, str(go), str(signum), *args],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def first_write_seen(engine: Any) -> Iterator[Any]:
    """An event set when ``engine`` is about to run its first INSERT, UPDATE or DELETE: the
    moment a request, sent from another thread, has got as far as the database, where it then
    waits for a lock the test holds. Listens only inside the ``with`` block."""
    import threading

    from sqlalchemy import event

    writing = threading.Event()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writing.set()

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield writing
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def stopped(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """Wait for ``proc`` to end on its own, its stdout and stderr. One that is still running
    after ``timeout`` is made to dump every thread's stack (faulthandler, on SIGABRT) and the
    test fails with it: a hang in CI is then diagnosed from the log alone."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        raise AssertionError(f"still running after {timeout:.0f} s:\n{err}") from None


#: Commands that serve until stopped (a web server, the scheduler, the demo's app, the
#: replay server): they install signal handlers and bind ports, so they always run in a
#: process of their own. ``run_cli`` runs every other command in this process.
SERVICE_COMMANDS = frozenset({"serve", "web", "worker", "demo", "replay-server"})

# The interpreter's own warning filters, before pytest's ``error``: what a command run as
# ``python -m monitor.cli`` lives with (pytest applies its filters per test, later).
_PROCESS_WARNING_FILTERS = list(warnings.filters)


def _command_of(args: tuple[str, ...]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120,
    process: bool = False, cwd: Path = ROOT, **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``mmlr *args`` from the repository root (or ``cwd``) and capture its output, as
    ``python -m monitor.cli *args`` would: exit code, stdout and stderr as text. ``env`` is
    the command's complete environment (build it with :func:`cli_env`); the default is
    ``cli_env()``.

    The command runs in this process (``monitor.cli.main`` with that environment, that folder,
    the interpreter's warning filters, its own stdout and stderr, and the root logger and
    signal handlers put back afterwards): a new interpreter costs 0.6-2 s of imports per call,
    a third of the suite's time when every call paid it. ``process=True``, and the commands
    of :data:`SERVICE_COMMANDS`, run in a real subprocess (``timeout`` and ``kwargs`` go to
    :func:`subprocess.run`; in this process only ``check`` applies); tests of what only a
    process shows (the modules a command imports, signals) ask for it."""
    env = env if env is not None else cli_env()
    if process or _command_of(args) in SERVICE_COMMANDS:
        return subprocess.run(
            [sys.executable, "-m", "monitor.cli", *args],
            capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, **kwargs)
    check = kwargs.pop("check", False)
    if kwargs:
        raise TypeError(f"run_cli in this process takes no {sorted(kwargs)}; pass process=True")
    proc = _run_in_this_process(list(args), env, cwd)
    if check:
        proc.check_returncode()
    return proc


def _run_in_this_process(args: list[str], env: dict[str, str],
                         cwd: Path) -> subprocess.CompletedProcess[str]:
    import io
    import logging

    from monitor import cli

    out, err = io.BytesIO(), io.BytesIO()
    # as the interpreter opens them under a UTF-8 locale: stderr never fails on a character
    # it cannot encode (a surrogate from an argument that is not UTF-8), stdout does
    streams = (io.TextIOWrapper(out, encoding="utf-8", write_through=True),
               io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace",
                                write_through=True))
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdout, sys.stderr = streams
    try:
        with warnings.catch_warnings():
            warnings.filters[:] = _PROCESS_WARNING_FILTERS
            try:
                code = cli.main(args)
            except SystemExit as exc:  # argparse: a usage error (2) or --help (0)
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        _restore_logger(root, saved_handlers, saved_level)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)

    def text(buffer: io.BytesIO) -> str:  # as subprocess.run(text=True) reads a pipe
        return io.TextIOWrapper(io.BytesIO(buffer.getvalue()), encoding="utf-8").read()

    return subprocess.CompletedProcess(["mmlr", *args], code, text(out), text(err))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str,
                          code: int = 1) -> None:
    """The CLI failed the way users should see it: exit ``code`` (1; 2 for options that do
    not go together) and one ``mmlr: error: ...`` line on stderr (no traceback) containing
    every fragment."""
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mmlr: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], proc.stderr


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if (
            key.startswith("MMLR_")
            and not key.startswith("MMLR_TEST_")
            and key != "MMLR_SHARED_DIR"
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MMLR_DATA_DIR", str(tmp_path / "data"))


#: The scrypt cost (N, r, p) of the suite's passwords. Hundreds of tests log in, and at the
#: shipped cost (about 0.2 s of CPU each here) those logins were a fifth of the suite's time.
#: The same code runs at this cost; the tests marked ``shipped_password_cost`` (the cost
#: against OWASP's table, the rehash of older costs, the dummy hash of a missing account)
#: keep the real one. Unlike every cost the tests store by hand (2**10 and 2**14 x 8 x 1),
#: it is not a cost mmlr ever shipped.
TEST_SCRYPT_COST = (2**8, 8, 1)


@pytest.fixture(autouse=True)
def _test_password_cost(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("shipped_password_cost"):
        return
    from screening.web import auth

    for name, value in zip(("_SCRYPT_N", "_SCRYPT_R", "_SCRYPT_P"), TEST_SCRYPT_COST,
                           strict=True):
        monkeypatch.setattr(auth, name, value)


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Tests that call ``monitor.cli.main()`` in-process get its log handlers (a file in the
    test's data dir) installed on the root logger; put the logger back and close what main()
    added, so no handler or open file leaks into the next test."""
    import logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    _restore_logger(root, before, level)


def _restore_logger(logger: Any, handlers: list[Any], level: int) -> None:
    """Give ``logger`` back exactly ``handlers`` and ``level``, closing the handlers added
    since (``monitor.cli.main`` replaces the root logger's handlers with its own)."""
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def shared_dir() -> Path:
    need(SHARED.is_dir() and (SHARED / "data").is_dir(), f"../shared is not at {SHARED}")
    return SHARED


@pytest.fixture
def pubmed_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "pubmed"


@pytest.fixture
def screening_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "screening"


def _pg_admin(admin_url: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(admin_url, isolation_level="AUTOCOMMIT")


def _fresh_pg_database(admin_url: str, *, template: str | None = None) -> tuple[str, str]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"mmlr_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin(admin_url)
    try:
        with admin.connect() as conn:
            copy = f' TEMPLATE "{template}"' if template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    finally:
        admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, name


def _drop_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import text

    admin = _pg_admin(admin_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _migrate_url(url: str) -> None:
    from store.engine import make_engine, migrate
    from store.settings import Settings

    engine = make_engine(Settings(env="test", database_url=url,
                                  entrez_email="tests@example.org"))
    try:
        migrate(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database at the head schema, made once per session and copied for each test: the
    migrations take 0.3-0.4 s a database, a copy a few ms (SQLite file) or 0.05-0.1 s
    (PostgreSQL ``CREATE DATABASE ... TEMPLATE``), and most tests start from the head schema
    anyway. The migrations themselves are still run by the tests marked ``empty_database``
    and by every test that upgrades an old schema."""
    if PG_URL:
        url, name = _fresh_pg_database(PG_URL)
        _migrate_url(url)  # disposed: a template may have no open connection
        yield name
        _drop_pg_database(PG_URL, name)
    else:
        path = tmp_path_factory.mktemp("template") / "mmlr.sqlite3"
        _migrate_url(f"sqlite:///{path}")
        yield str(path)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database of this test: PostgreSQL when configured, else a SQLite file; at the head
    schema (a copy of ``_migrated_template``), or without any table for a test marked
    ``empty_database`` (first start, ``mmlr migrate``, schema checks)."""
    empty = request.node.get_closest_marker("empty_database") is not None
    template = None if empty else request.getfixturevalue("_migrated_template")
    if PG_URL:
        url, name = _fresh_pg_database(PG_URL, template=template)
        yield url
        _drop_pg_database(PG_URL, name)
    else:
        path = tmp_path / "mmlr.sqlite3"
        if template:
            shutil.copyfile(template, path)
        yield f"sqlite:///{path}"


def table_without(model: Any, *later_columns: str) -> Any:
    """``model``'s table without the columns migrations added after the revision a test fills
    (e.g. ``table_without(Record, "identified_via")`` is ``records`` before 0016), so that a
    test can insert rows into an old schema through today's column types. Each name must be
    a column of today's table: a misspelt one would silently leave the column in."""
    from sqlalchemy import MetaData, Table

    columns = model.__table__.columns
    unknown = set(later_columns) - {c.name for c in columns}
    assert not unknown, f"{model.__tablename__} has no column {sorted(unknown)}"
    return Table(model.__tablename__, MetaData(),
                 *(c._copy() for c in columns if c.name not in later_columns))


@pytest.fixture
def pg_admin_url() -> str:
    """The PostgreSQL server of the PostgreSQL run. A test that needs it is the PostgreSQL
    run's: the SQLite run skips it, in CI too (CI runs both; the PostgreSQL run has the URL,
    and its own checks fail when the server is missing)."""
    if not PG_URL:
        pytest.skip("a PostgreSQL test: runs when MMLR_TEST_DATABASE_URL is set")
    return PG_URL


@pytest.fixture
def settings(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    from store.settings import Settings

    return Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=db_url,
        entrez_url="http://127.0.0.1:9/entrez/eutils/",  # overridden by tests that poll
        entrez_email="tests@example.org",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        admin_password="first-login-passphrase-for-tests",
    )


@pytest.fixture
def ctx(settings):  # type: ignore[no-untyped-def]
    from store.context import make_context

    context = make_context(settings)
    yield context
    context.dispose()


@pytest.fixture
def chromium_path() -> str:
    path = "/usr/bin/chromium"
    need(Path(path).exists(), "Chromium is not installed at /usr/bin/chromium")
    return path


@pytest.fixture(scope="session")
def rscript() -> str:
    path = shutil.which("Rscript")
    need(path is not None, "Rscript is not installed "
         "(apt-get install r-base-core r-cran-metafor r-cran-survival)")
    assert path is not None
    return path


@pytest.fixture
def rscript_survival(rscript: str) -> str:
    """Rscript with R's survival package (the reference for the Cox fit of ``reports.km``)."""
    found = subprocess.run([rscript, "-e", 'quit(status = !requireNamespace("survival", '
                            'quietly = TRUE))'], capture_output=True, timeout=120).returncode == 0
    need(found, "R's survival package is not installed (apt-get install r-cran-survival)")
    return rscript
