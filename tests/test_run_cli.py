"""``run_cli`` runs a command in the test's process (conftest): it must answer as
``python -m monitor.cli`` does, and leave the process as it found it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import cli_env, run_cli


@pytest.mark.parametrize("args", [
    ("config",),  # settings on stdout
    ("config", "--no-such-option"),  # argparse: usage on stderr, exit 2
    ("--help",),  # argparse: exit 0 through SystemExit
    ("status",),  # a database that is not there yet: exit 1, one line
    ("meta", "/nonexistent/estimates.csv"),  # an error naming the file
])
def test_in_this_process_answers_as_a_new_process(args: tuple[str, ...], tmp_path: Path) -> None:
    env = cli_env(MMLR_DATA_DIR=str(tmp_path / "data"))
    here = run_cli(*args, env=env)
    there = run_cli(*args, env=env, process=True)
    assert (here.returncode, here.stdout, here.stderr) == (
        there.returncode, there.stdout, there.stderr)
    assert here.stdout or here.stderr  # the comparison compared something


def test_the_process_is_left_as_it_was(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    environ, cwd = dict(os.environ), os.getcwd()
    os.chdir(tmp_path)
    try:
        proc = run_cli("-v", "config", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "data"),
                                                  MMLR_LOG_LEVEL="DEBUG"))
        assert proc.returncode == 0, proc.stderr
        assert os.getcwd() == str(tmp_path)
    finally:
        os.chdir(cwd)
    assert os.environ == environ  # MMLR_LOG_LEVEL was the command's only
    assert (list(root.handlers), root.level) == (handlers, level)  # its log file closed
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (sigint,
                                                                                   sigterm)
    assert (tmp_path / "data" / "mmlr.log").exists()


def test_a_failing_command_raises_with_check(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        run_cli("status", env=cli_env(MMLR_DATA_DIR=str(tmp_path / "d")), check=True)


def test_a_service_command_runs_in_its_own_process(tmp_path: Path) -> None:
    # `serve` on an address this machine does not have fails at once, in a process whose
    # argv is the interpreter's: a command run here would report ["mmlr", ...].
    proc = run_cli("serve", "--host", "192.0.2.1", env=cli_env(MMLR_DATA_DIR=str(tmp_path)),
                   timeout=60)
    assert proc.args[:3] == [proc.args[0], "-m", "monitor.cli"] and proc.args[0] != "mmlr"
    assert proc.returncode == 1 and "192.0.2.1" in proc.stderr
