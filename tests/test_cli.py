"""The CLI contract: exit codes, one-line errors, idempotent init."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, assert_one_line_error, cli_env, run_cli


def test_usage_error_exits_2(tmp_path: Path) -> None:
    proc = run_cli("pool", "--no-such-flag", env=cli_env(MMLR_DATA_DIR=str(tmp_path)))
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli(
        "init",
        env=cli_env(
            MMLR_DATA_DIR=str(tmp_path),
            MMLR_DATABASE_URL="postgresql+psycopg://nobody:pw@127.0.0.1:1/none",
        ),
    )
    assert_one_line_error(proc, "cannot connect to the database", "MMLR_DATABASE_URL")
    assert "pw@" not in proc.stderr  # the password is not shown


def test_a_file_that_is_no_sqlite_database_is_one_clear_line(tmp_path: Path) -> None:
    # Both were an "internal error" with a second log line, pointing at the log.
    fake = tmp_path / "fake.sqlite3"
    fake.write_bytes(b"SQLite format 3\x00" + b"garbage" * 200)
    proc = run_cli("pool", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d"),
                                       MMLR_DATABASE_URL=f"sqlite:///{fake}"))
    assert_one_line_error(proc, f"cannot connect to the database sqlite:///{fake}: file is not "
                          "a database", "check MMLR_DATABASE_URL")
    proc = run_cli("init", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d"),
                                       MMLR_DATABASE_URL="sqlite:////proc/mmlr/mmlr.sqlite3"))
    assert_one_line_error(proc, "cannot create the folder /proc/mmlr of the SQLite database",
                          "check MMLR_DATABASE_URL")


def test_a_postgres_role_that_may_not_create_tables_is_one_clear_line(
        tmp_path: Path, pg_admin_url: str) -> None:
    # PostgreSQL 15 lets only a database's owner create tables in its public schema (revoked
    # here explicitly, whatever the server's version): `init` was an "internal error".
    import uuid

    from conftest import _drop_pg_database, _fresh_pg_database
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    role, password = f"mmlr_low_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    url, name = _fresh_pg_database(pg_admin_url)
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    inside = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        with inside.connect() as conn:
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        low = make_url(url).set(username=role, password=password)
        proc = run_cli("init", env=cli_env(
            MMLR_DATA_DIR=str(tmp_path), MMLR_DATABASE_URL=low.render_as_string(
                hide_password=False)))
        assert_one_line_error(proc, "the database user cannot create mmlr's tables in ",
                              "permission denied for schema public",
                              f"GRANT CREATE ON SCHEMA public TO {role}")
        assert password not in proc.stderr
    finally:
        inside.dispose()
        _drop_pg_database(pg_admin_url, name)
        with admin.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def test_unsupported_database_url_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli(
        "init", env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_DATABASE_URL="oracle://x")
    )
    assert_one_line_error(proc, "MMLR_DATABASE_URL", "unsupported database URL scheme")


def test_bad_smtp_url_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli(
        "digest",
        "--send",
        env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_SMTP_URL="mailto:someone@example.org"),
    )
    assert_one_line_error(proc, "MMLR_SMTP_URL")


def test_pmid_file_errors_name_the_line(tmp_path: Path) -> None:
    pmids = tmp_path / "pmids.txt"
    pmids.write_text("28826616\n# a comment\nnot-a-pmid\n")
    proc = run_cli("poll", "--pmids", str(pmids), env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(proc, f"{pmids}:3", "'not-a-pmid' is not a PMID")


def test_unexpected_errors_never_show_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor import cli

    def explode(args, settings):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["config"].set_defaults(func=explode)  # type: ignore[union-attr]
    code = cli.main(["config"])  # conftest restores the root logger afterwards
    err = capsys.readouterr().err
    assert code == 1
    assert "internal error in `config`" in err and "secret internals" not in err
    assert "Traceback" not in err
    # One line: the log record of the failure used to reach the terminal too.
    assert err.strip().splitlines() == [f"mmlr: internal error in `config`; details in "
                                        f"{Path(os.environ['MMLR_DATA_DIR']) / 'mmlr.log'}"]
    log_file = Path(os.environ["MMLR_DATA_DIR"]) / "mmlr.log"
    assert "secret internals" in log_file.read_text()  # the details are kept for operators


def test_a_database_gone_mid_command_is_one_line_not_an_internal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL restarting under a running command is an outage: one line saying so, exit
    1, no traceback and no "internal error" (a bug would be one)."""
    from monitor import cli
    from store.engine import make_engine

    def reads_a_database_that_went_away(args, settings):  # type: ignore[no-untyped-def]
        # a real connection to a port where no server listens: psycopg's own error
        engine = make_engine("postgresql+psycopg://mmlr@127.0.0.1:9/mmlr")
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["config"].set_defaults(  # type: ignore[union-attr]
        func=reads_a_database_that_went_away)
    code = cli.main(["config"])
    err = capsys.readouterr().err
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("mmlr: error: the database is unreachable: connection failed")
    assert "127.0.0.1" in line and "port 9" in line
    assert line.endswith("(run the command again once it is back; an interrupted poll "
                         "resumes)")
    assert "internal error" not in err and "Traceback" not in err


def _readme_cli_rows() -> list[str]:
    """The first cell (the synopsis) of each row of the README's CLI table."""
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `mmlr ")]
    return [r.replace("\\|", "/").split("|")[1] for r in rows]


def _commands() -> dict[str, Any]:
    """Every command a user types, nested ones as "users add", with its parser."""
    import argparse

    from monitor.cli import build_parser

    def walk(parser: argparse.ArgumentParser, prefix: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    path = f"{prefix} {name}".strip()
                    found[path] = child
                    found.update(walk(child, path))
        return found

    return {"": build_parser(), **walk(build_parser(), "")}


def _is_group(parser: Any) -> bool:
    import argparse

    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _options(parser: Any) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings
            if flag not in ("-h", "--help")}


def _named(cell: str, commands: dict[str, Any]) -> list[str]:
    """The commands a synopsis names: `mmlr users add` is "users add", `mmlr -v` none."""
    named = []
    for words in re.findall(r"`mmlr ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", cell):
        name = words if words in commands else words.split()[0]
        if name in commands:
            named.append(name)
    return named


def test_readme_documents_every_command_and_flag() -> None:
    """The README's CLI table is the user's reference: every command, nested ones included, has
    a row that names each of its options and choices, and the top-level options have one."""
    cells = _readme_cli_rows()
    commands = _commands()
    for name, cmd in commands.items():
        if name and _is_group(cmd):
            continue  # `users`, `subscribers`: their actions have the rows
        parent, _, child = name.partition(" ")
        mine = ([c for c in cells if not _named(c, commands)] if name == "" else
                [c for c in cells if name in _named(c, commands)
                 or (child and f"`{child}" in c
                     and any(n.split()[0] == parent for n in _named(c, commands)))])
        assert mine, f"`mmlr {name}` has no row in the README's CLI table"
        for action in cmd._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert any(flag in c for c in mine), f"`mmlr {name} {flag}` is missing"
            for choice in action.choices or ():
                if not isinstance(action.choices, dict):  # subcommands are checked above
                    assert any(str(choice) in c for c in mine), \
                        f"`mmlr {name}`: the choice {choice!r} is missing"


def test_readme_documents_no_option_a_command_lacks() -> None:
    """The other way round: a flag in a row's synopsis is one every command the row names
    accepts (`mmlr worker` once showed --host/--port that did nothing but change the links of
    its digests)."""
    commands = _commands()
    for cell in _readme_cli_rows():
        named = _named(cell, commands) or [""]
        for flag in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", cell):
            for name in named:
                assert flag in _options(commands[name]), \
                    f"the README shows `{flag}` for `mmlr {name}`, which has no such option"


@pytest.mark.parametrize(("command", "port"), [
    ("web", "70000"), ("serve", "0"), ("web", "65536"), ("demo", "-1"),
    ("replay-server", "http"),
])
def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path, command: str, port: str) -> None:
    # uvicorn would print a 40-line traceback for it
    proc = run_cli(command, f"--port={port}", *(["--dir", str(tmp_path)] if command ==
                                                 "replay-server" else []),
                   env=cli_env(MMLR_DATA_DIR=str(tmp_path)))
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr and "argument --port:" in proc.stderr
    assert "1 to 65535" in proc.stderr or "not a port number" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", ["--port=9000", "--host=0.0.0.0"])
def test_the_worker_takes_no_address(tmp_path: Path, option: str) -> None:
    # It listens on nothing; --port used to be accepted and to change the address in the
    # links of the digests it sends.
    proc = run_cli("worker", option, env=cli_env(MMLR_DATA_DIR=str(tmp_path)), timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert f"unrecognized arguments: {option}" in proc.stderr


@pytest.mark.parametrize("command", ["web", "serve", "replay-server"])
def test_an_empty_host_is_a_usage_error(tmp_path: Path, command: str) -> None:
    # An empty address binds every interface (replay-server) or silently means MMLR_HOST.
    extra = ["--dir", str(tmp_path)] if command == "replay-server" else []
    proc = run_cli(command, "--host", "", *extra, env=cli_env(MMLR_DATA_DIR=str(tmp_path)),
                   timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "argument --host: not an address or host name: ''" in proc.stderr


def test_mmlr_port_out_of_range_is_one_clear_line(tmp_path: Path) -> None:
    proc = run_cli("web", env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_PORT="99999"))
    assert_one_line_error(proc, "MMLR_PORT", "from 1 to 65535, got 99999")


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on, for as long as the block runs."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_port_in_use_is_one_line_before_the_address_is_announced(tmp_path: Path) -> None:
    with taken_port() as port:
        proc = run_cli("web", "--port", str(port), env=cli_env(MMLR_DATA_DIR=str(tmp_path)),
                       timeout=60)
    assert_one_line_error(proc, f"cannot listen on 127.0.0.1:{port}: the port is in use",
                          "--port or MMLR_PORT")
    assert "mmlr web app at" not in proc.stdout  # nothing claims it is serving


def test_the_demo_checks_its_web_port_before_the_cycle(tmp_path: Path) -> None:
    with taken_port() as port:
        proc = run_cli("demo", "--port", str(port), env=cli_env(MMLR_DATA_DIR=str(tmp_path)),
                       timeout=120)
    assert_one_line_error(proc, f"cannot listen on 127.0.0.1:{port}: the port is in use")
    # It used to run the whole cycle first, and announce the app at that address.
    assert proc.stdout == ""
    assert not (tmp_path / "mmlr.sqlite3").exists()


def test_an_address_not_of_this_machine_is_one_line(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine
    proc = run_cli("serve", "--host", "192.0.2.1", env=cli_env(MMLR_DATA_DIR=str(tmp_path)),
                   timeout=60)
    assert_one_line_error(proc, "cannot listen on 192.0.2.1:8000",
                          "not one of this machine's", "--host or MMLR_HOST")
    assert "mmlr web app at" not in proc.stdout


def test_a_cron_that_never_fires_stops_the_worker(tmp_path: Path) -> None:
    # Without the check the worker would start with a paused job and run for ever (the
    # timeout then fails the test).
    proc = run_cli("worker", env=cli_env(MMLR_DATA_DIR=str(tmp_path),
                                         MMLR_POLL_CRON="0 6 31 2 *"), timeout=60)
    assert_one_line_error(proc, "MMLR_POLL_CRON '0 6 31 2 *' never fires")


@pytest.mark.parametrize("where", ["file", "under a file", "/proc/mmlr"])
def test_an_unusable_data_dir_is_one_clear_line(tmp_path: Path, where: str) -> None:
    file = tmp_path / "not-a-folder"
    file.write_text("")
    data_dir = {"file": str(file), "under a file": str(file / "data"),
                "/proc/mmlr": "/proc/mmlr"}[where]
    proc = run_cli("init", env=cli_env(MMLR_DATA_DIR=data_dir))
    assert_one_line_error(proc, f"MMLR_DATA_DIR {data_dir} is not a writable folder")
    assert "mmlr.log" not in proc.stderr  # no pointer to a log that cannot exist
    if where == "file":
        assert "(it is a file)" in proc.stderr


@pytest.mark.parametrize("command", ["status", "pool"])
@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db",
                                 "sqlite+aiosqlite:///x.db"])
def test_a_database_driver_mmlr_does_not_ship_is_one_clear_line(
        tmp_path: Path, command: str, url: str) -> None:
    # The settings checked only the part before '+': the command died at its first
    # connection with an internal error (ModuleNotFoundError).
    proc = run_cli(command, env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_DATABASE_URL=url))
    scheme = url.split(":")[0]
    assert_one_line_error(
        proc, f"mmlr: error: invalid setting MMLR_DATABASE_URL: unsupported database driver "
              f"{scheme.split('+')[1]!r} in {scheme}://: mmlr ships Python's sqlite3 and "
              "psycopg 3 and opens only sqlite://, sqlite+pysqlite://, postgresql:// and "
              "postgresql+psycopg:// URLs, e.g. sqlite:///PATH or "
              "postgresql+psycopg://USER:PASS@HOST/DB")


def test_a_setting_that_is_not_utf8_is_one_clear_line(tmp_path: Path) -> None:
    # Bytes that are not UTF-8 reach os.environ surrogate-escaped; subprocess writes them back
    # as the raw bytes, as a shell would have set them (so a process of its own).
    proc = run_cli("init", env=cli_env(MMLR_DATA_DIR=str(tmp_path),
                                       MMLR_ENTREZ_API_KEY="key\udcff"), process=True)
    assert_one_line_error(proc, "MMLR_ENTREZ_API_KEY: contains bytes that are not UTF-8")


def test_a_password_that_is_not_utf8_is_one_clear_line(db_url: str, tmp_path: Path) -> None:
    # Bytes that are not UTF-8 in argv reach Python surrogate-escaped: hashing the password
    # was an internal error (UnicodeEncodeError). A process of its own, as a shell runs it.
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli("users", "add", "f@example.org", "--role", "viewer", "--password",
                   "\udcffabcdefghijklmnopqrstuvwxyz-long", env=env, process=True)
    assert_one_line_error(proc, "mmlr: error: the password is not valid UTF-8 text (type it "
                                "in a UTF-8 terminal, or leave it out to have one generated)")
    listed = run_cli("users", "list", env=env)
    assert listed.returncode == 0 and "f@example.org" not in listed.stdout


@pytest.mark.parametrize("verbose", [(), ("-v",)])
def test_a_path_that_is_not_utf8_is_logged_without_a_traceback(
        db_url: str, tmp_path: Path, verbose: tuple[str, ...]) -> None:
    # The log handlers could not encode the lone surrogate of a name given as bytes that are
    # not UTF-8: logging printed "--- Logging error ---" and a traceback on the terminal.
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    out = tmp_path / "ex" / "x\udcff.csv"
    proc = run_cli(*verbose, "export", "csv", "--out", str(out), env=env, process=True,
                   errors="surrogateescape")
    assert proc.returncode == 0, proc.stderr
    assert "Logging error" not in proc.stderr and "Traceback" not in proc.stderr
    shown = str(out).replace("\udcff", "\\udcff")  # escaped, in the log as on the terminal
    assert proc.stderr.splitlines()[-1] == shown
    if verbose:
        assert f"INFO reports.exports: export csv written to {shown}" in proc.stderr
    assert os.path.isfile(out)
    log = (tmp_path / "d" / "mmlr.log").read_text(encoding="utf-8")
    assert f"export csv written to {shown}" in log
    copy = tmp_path / "copy" / "\udcff.sqlite3"
    proc = run_cli(*verbose, "copy-db", f"sqlite:///{copy}", env=env, process=True,
                   errors="surrogateescape")
    assert proc.returncode == 0, proc.stderr
    assert "Logging error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("copied ") and os.path.isfile(copy)


def test_a_digest_written_to_a_name_that_is_not_utf8_says_where(db_url: str,
                                                                tmp_path: Path) -> None:
    # The digest was written, then printing "digest written to …" with the name's lone
    # surrogate failed: an internal error after the work was done. A process of its own, with
    # the stdout of a UTF-8 locale such as en_US.UTF-8, which (unlike stderr) refuses what it
    # cannot encode (under C and C.UTF-8, this machine's, Python writes the raw byte instead).
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url,
                  PYTHONIOENCODING="utf-8")
    out = tmp_path / "x\udcff.html"
    proc = run_cli("digest", "--out", str(out), env=env, process=True, errors="surrogateescape")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines()[-1] == "digest #1 written to " + str(out).replace(
        "\udcff", "\\udcff") + (" (a preview: delivered to nobody; the next digest still "
                                "counts from the last one delivered)")
    assert os.path.isfile(out)


@pytest.mark.parametrize("command", [("users", "add"), ("users", "password"),
                                     ("subscribers", "add"), ("subscribers", "remove")])
def test_an_address_that_is_not_utf8_is_a_usage_error(db_url: str, tmp_path: Path,
                                                       command: tuple[str, ...]) -> None:
    # `users password` and `subscribers remove` looked the address up as it came: the
    # database could not take its lone surrogate (an internal error). Now every address
    # argument is refused before the command runs, as the others' usage errors are.
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    extra = ("--role", "viewer") if command == ("users", "add") else ()
    proc = run_cli(*command, "a\udcff@example.org", *extra, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].endswith(
        "error: argument email: 'a\\udcff@example.org' is not UTF-8 text")
    assert not (tmp_path / "d" / "mmlr.log").exists()  # refused before anything ran


@pytest.mark.parametrize("args", [("digest", "--out", ""), ("poll", "--pmids", ""),
                                  ("export", "csv", "--out", " "), ("network", "--key", ""),
                                  ("simulate", "rows.csv", "--prior-ids", "")])
def test_an_empty_value_is_refused_not_read_as_the_option_left_out(
        db_url: str, tmp_path: Path, args: tuple[str, ...]) -> None:
    # An unset shell variable (--out "$FILE") gives "", which the commands read as "not
    # given": the digest went to every subscriber instead of a file, poll --pmids ran the
    # whole PubMed search, the export went to the terminal.
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "d"), MMLR_DATABASE_URL=db_url)
    proc = run_cli(*args, env=env)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr.splitlines()[-1] == (f"mmlr: error: argument {args[-2]}: an empty value "
                                            "(give one, or leave the option out)")
    assert not (tmp_path / "d").exists()  # nothing ran: no log, no outbox, no poll run


def test_an_empty_positional_is_refused(tmp_path: Path) -> None:
    proc = run_cli("meta", "", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")))
    assert proc.returncode == 2  # it was ".: is not a file": Path("") is "."
    assert proc.stderr.splitlines()[-1] == "mmlr: error: argument FILE.csv: an empty value"


def test_a_bogus_log_level_is_refused_and_a_lower_case_one_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from monitor import cli

    # It used to fall back to INFO without a word.
    proc = run_cli("config", env=cli_env(MMLR_DATA_DIR=str(tmp_path), MMLR_LOG_LEVEL="bogus"))
    assert_one_line_error(proc, "MMLR_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, "
                          "CRITICAL, got 'bogus'")
    monkeypatch.setenv("MMLR_LOG_LEVEL", "error")
    assert cli.main(["config"]) == 0  # conftest restores the root logger afterwards
    assert logging.getLogger().level == logging.ERROR


def test_console_log_records_are_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    # What APScheduler prints every 10 s while the database is down, quoting psycopg.
    import logging

    from monitor.cli import configure_logging

    configure_logging(None, verbose=False)
    logging.getLogger("apscheduler.scheduler").warning(
        "Error getting due jobs from job store 'default': (psycopg.OperationalError) connection "
        "failed: Connection refused\n\tIs the server running on that host?\n(Background on "
        "this error at: https://sqlalche.me/e/20/e3q8)")
    err = capsys.readouterr().err
    assert err == ("WARNING apscheduler.scheduler: Error getting due jobs from job store "
                   "'default': (psycopg.OperationalError) connection failed: Connection refused "
                   "Is the server running on that host? (Background on this error at: "
                   "https://sqlalche.me/e/20/e3q8)\n")
