"""Every argument of every command, given hostile values, ends the command the way the guide
asks: done (exit 0), a usage error (exit 2), or one ``mmlr: error:`` line (exit 1), never a
traceback or an "internal error". The commands and their arguments are read from the parser,
so a new option is swept the day it is added.

The values are the kinds that found internal errors before: empty, negative, not a number, a
number past any integer column, a name longer than the file system allows, a device, the root
folder, bytes that are not UTF-8 (a lone surrogate, as Python gives them), a list, a space.
The commands that serve until stopped, and ``run`` (a poll of PubMed), are left out: their
arguments are swept where they are parsed (``--host``/``--port`` in ``tests/test_cli.py``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from conftest import SERVICE_COMMANDS, cli_env, run_cli

from monitor.cli import build_parser

VALUES = ("", "-1", "0", "abc", "9" * 30, "nan", "/nonexistent/folder/x", "/dev/null", "/",
          "x" * 5000, "a\udcffb", "1,2", "a b")
LEFT_OUT = SERVICE_COMMANDS | {"run"}


def leaf_commands(parser: argparse.ArgumentParser,
                  prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                  argparse.ArgumentParser]]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subparsers:
        for name, sub in action.choices.items():
            yield from leaf_commands(sub, (*prefix, name))
    if prefix and not subparsers:
        yield prefix, parser


def argument_lists(parser: argparse.ArgumentParser) -> Iterator[list[str]]:
    """Each positional and each option that takes a value, given each hostile value in turn;
    the other positionals a placeholder. An argument with a fixed list of choices is given
    each of them instead (any other value is argparse's own refusal)."""
    values = [a for a in parser._actions
              if a.nargs != 0 and not isinstance(a, argparse._HelpAction)]
    positionals = [a for a in values if not a.option_strings]
    base = [next(iter(a.choices)) if a.choices else "x.csv" for a in positionals]
    for i, action in enumerate(positionals):
        for value in action.choices or VALUES:
            yield [*base[:i], value, *base[i + 1:]]
    for action in (a for a in values if a.option_strings):
        for value in action.choices or VALUES:
            yield [*base, action.option_strings[-1], value]


def test_no_argument_value_ends_a_command_in_a_traceback(tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"),
                  MMLR_ADMIN_PASSWORD="a passphrase for the sweep",
                  MMLR_ENTREZ_URL="http://127.0.0.1:9/entrez/eutils/")  # nothing listens
    assert run_cli("init", env=env).returncode == 0
    work = tmp_path / "work"
    work.mkdir()
    swept: set[tuple[str, ...]] = set()
    failures = []
    for command, parser in leaf_commands(build_parser()):
        if command[0] in LEFT_OUT:
            continue
        for args in argument_lists(parser):
            if command == ("export",) and "--out" not in args:
                args = [*args, "--out", str(tmp_path / "exports" / "out")]
            # from a folder of its own: a value that is a relative name ("0", "a b") is a
            # file the command may rightly write there (digest --out)
            proc = run_cli(*command, *args, env=env, cwd=work)
            swept.add(command)
            lines = proc.stderr.strip().splitlines()
            fine = (proc.returncode in (0, 2) or (
                proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("mmlr: error: ")))
            if not fine or "Traceback" in proc.stderr or "internal error" in proc.stderr:
                failures.append((command, [a[:40] for a in args], proc.returncode,
                                 proc.stderr[-300:]))
    assert not failures, "\n".join(map(str, failures))
    # every command that takes a value was reached (a parser change cannot make it sweep
    # nothing)
    assert swept == {("poll",), ("meta",), ("network",), ("digest",), ("simulate",),
                     ("export",), ("users", "add"), ("users", "password"),
                     ("subscribers", "add"), ("subscribers", "remove"), ("copy-db",)}
