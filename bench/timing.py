"""Helpers shared by the benchmark scripts (imported as ``timing``: each script runs as
``python bench/<name>.py``, so this folder is first on ``sys.path``): the median timer and
the throw-away working folder."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The password of the user a benchmark logs in as, one the password rule accepts
#: (screening.web.auth.check_password_strength: at least 15 characters, not naming the
#: address, bench@example.org); it refused the one the scripts had ("bench-password"), so
#: they stopped before measuring.
BENCH_PASSWORD = "a curator passphrase for timing 2026"


@contextmanager
def working_folder(name: str, *, keep: bool = False) -> Iterator[Path]:
    """A new folder under the system's temporary directory (``mmlr-bench-<name>-…``), removed
    however the run ends (an error, Ctrl-C) unless ``keep``: a benchmark's database is tens
    of megabytes, and every run used to leave one behind."""
    folder = Path(tempfile.mkdtemp(prefix=f"mmlr-bench-{name}-"))
    try:
        yield folder
    finally:
        if keep:
            print(f"working folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def median_ms(fn: Callable[[], object], n: int) -> float:
    """Median wall time of ``n`` calls of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
