"""Benchmark of a CLI command's whole run (interpreter start, imports, work), as a container's
health check or a cron job pays it, against the floor every command pays.

    python bench/cli_start.py DATA_DIR [--against CHECKOUT [--against-data DIR]]
                              [--repeats 8] [COMMAND ...]

Runs ``python -m monitor.cli COMMAND`` (default ``status``) with ``MMLR_DATA_DIR=DATA_DIR``
(make one with ``MMLR_DATA_DIR=DATA_DIR mmlr demo --no-serve``) ``--repeats`` times, and as
the baseline of the same run ``python -c "import sqlmodel"`` (the interpreter and the ORM, which
every command that reads the database imports). With ``--against CHECKOUT`` (another checkout
of mmlr, e.g. ``git worktree add /tmp/old <rev>``) it also runs that checkout's code, first on
``PYTHONPATH`` and as the working folder (``python -m`` puts the working folder first on
``sys.path``), interleaved with this one's so that both see the same load; ``--against-data``
gives it a data folder of its own (a copy of DATA_DIR at its schema revision: ``mmlr status``
stops early on a schema it does not expect). Prints the median, minimum and maximum seconds
of each and their ratios to the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    # The exit code is not checked: `status` exits 1 when something needs attention, which
    # is still a whole run.
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--against", type=Path, help="another checkout to time beside this one")
    parser.add_argument("--against-data", type=Path,
                        help="the data folder for --against (default: DATA_DIR)")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("command", nargs="*", default=["status"])
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        parser.error(f"{args.data_dir} is not a folder (make one with `mmlr demo --no-serve`)")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MMLR_")}
    base_env["MMLR_DATA_DIR"] = str(args.data_dir)
    command = [sys.executable, "-m", "monitor.cli", *args.command]
    runs: dict[str, tuple[list[str], dict[str, str], Path]] = {
        "baseline: import sqlmodel":
            ([sys.executable, "-c", "import sqlmodel"], base_env, ROOT),
        f"this checkout: mmlr {' '.join(args.command)}":
            (command, {**base_env, "PYTHONPATH": str(ROOT)}, ROOT),
    }
    if args.against:
        other = args.against.resolve()
        data = args.against_data or args.data_dir
        runs[f"{args.against}: mmlr {' '.join(args.command)}"] = (
            command, {**base_env, "PYTHONPATH": str(other), "MMLR_DATA_DIR": str(data)}, other)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (argv_, env, cwd) in runs.items():
            times[name].append(_timed(argv_, env, cwd))
    baseline = statistics.median(times["baseline: import sqlmodel"])
    print(f"{args.repeats} runs each, interleaved; load average {os.getloadavg()[0]:.1f}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:60s} median {median:5.2f} s (min {min(seconds):.2f}, "
              f"max {max(seconds):.2f})  {median / baseline:4.1f}x baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
