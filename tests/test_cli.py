"""The CLI contract: exit codes, one-line errors, idempotent init."""

from __future__ import annotations

import os
from pathlib import Path

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
    log_file = Path(os.environ["MMLR_DATA_DIR"]) / "mmlr.log"
    assert "secret internals" in log_file.read_text()  # the details are kept for operators


def test_readme_documents_every_command_and_flag() -> None:
    """The README's CLI table is the user's reference: every subcommand has a row that names
    each of its options."""
    import argparse

    from monitor.cli import build_parser

    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `mmlr ")]
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, cmd in sub.choices.items():
        mine = [r.replace("\\|", "/").split("|")[1] for r in rows
                if f"`mmlr {name}`" in r or f"`mmlr {name} " in r]
        assert mine, f"`mmlr {name}` has no row in the README's CLI table"
        for action in cmd._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert any(flag in r for r in mine), f"`mmlr {name} {flag}` is missing"
