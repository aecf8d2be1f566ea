"""Every setting, given a hostile value in the environment, is taken or refused with one
``ConfigError`` line naming it, never another exception; and ``mmlr status``, which opens what
the settings name (the data folder and its log, the database, the analyses file, the protocol
query), ends in a report or one line for each such value, never a traceback or an "internal
error". The settings are read from the one settings object, so a new one is swept the day it
is added."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_env, run_cli

from store.errors import ConfigError
from store.settings import Settings, load_settings

VALUES = ("", " ", "-1", "0", "abc", "9" * 30, "nan", "inf", "1e309", "/nonexistent/folder/x",
          "/dev/null", "/", "x" * 5000, "1,2", "a\udcffb")
#: The settings ``mmlr status`` opens or reads beyond their validation.
OPENED = ("data_dir", "database_url", "analyses_file", "query", "log_level", "entrez_url",
          "base_url")


def test_every_setting_is_taken_or_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = set()
    for name in Settings.model_fields:
        variable = f"MMLR_{name.upper()}"
        for value in VALUES:
            monkeypatch.setenv(variable, value)
            try:
                load_settings()
            except ConfigError as exc:
                assert variable in exc.one_line() and "\n" not in exc.one_line(), exc
                refused.add(name)
        monkeypatch.delenv(variable)
    # the sweep met the checks (not a run where every value was taken)
    assert {"entrez_timeout", "port", "target_recall", "poll_cron", "env"} <= refused


@pytest.mark.parametrize("name", OPENED)
def test_status_ends_in_one_line_whatever_a_setting_names(tmp_path: Path, name: str) -> None:
    base = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"))
    assert run_cli("init", env=base).returncode == 0
    failures = []
    for value in VALUES:
        if name == "data_dir" and value == "/":  # a real, writable folder when run as root
            continue
        proc = run_cli("status", env={**base, f"MMLR_{name.upper()}": value}, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        fine = proc.returncode == 0 or (proc.returncode == 1 and len(lines) <= 1)
        if not fine or "Traceback" in proc.stderr or "internal error" in proc.stderr:
            failures.append((value[:40], proc.returncode, proc.stderr[-300:]))
    assert not failures, "\n".join(map(str, failures))
