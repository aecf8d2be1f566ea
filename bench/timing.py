"""Timing helper shared by the benchmark scripts (imported as ``timing``: each script runs
as ``python bench/<name>.py``, so this folder is first on ``sys.path``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], n: int) -> float:
    """Median wall time of ``n`` calls of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
