"""Benchmark of the stopping test's hypergeometric CDF (``screening.hypergeometric``) against
``scipy.stats.hypergeom.cdf``, the baseline it replaced, on the prioritised-order test's
arguments.

    python bench/hypergeom.py [--screened 20000] [--unscreened 5000] [--repeats 5]

The arguments are those of ``screening.stopping.ranked_p_values`` for a review with
``--screened`` records screened since the last arrival (each of the last n screened is a
candidate sample; 1% of them includes, drawn with a fixed seed) and ``--unscreened`` left.
Prints the best of ``--repeats`` for each, the ratio, and the largest relative difference
between the two (the tests hold it below 1e-8; tests/test_stopping.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# bench/ holds a screening/ folder of its own: the package must come first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screened", type=int, default=20_000)
    parser.add_argument("--unscreened", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    from scipy.stats import hypergeom
    import_seconds = time.perf_counter() - start
    from screening.hypergeometric import hypergeom_cdf
    from screening.stopping import missed_for_failure

    rng = np.random.default_rng(0)
    n = np.arange(1, args.screened + 1)
    k = np.cumsum(rng.random(args.screened) < 0.01)
    m = missed_for_failure(int(k[-1]) + 20, 0.95)
    urn, urn_includes = args.unscreened + n, k + m

    def best(fn) -> tuple[float, np.ndarray]:  # type: ignore[no-untyped-def]
        times, out = [], None
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = fn(k, urn, urn_includes, n)
            times.append(time.perf_counter() - t)
        return min(times), out

    base_s, base = best(hypergeom.cdf)
    ours_s, ours = best(hypergeom_cdf)
    rel = np.abs(ours - base) / np.maximum(base, 1e-300)
    print(f"{args.screened} candidate samples, {args.unscreened} unscreened, m = {m}; "
          f"best of {args.repeats}")
    print(f"baseline scipy.stats.hypergeom.cdf  {base_s * 1000:8.1f} ms "
          f"(importing scipy.stats: {import_seconds * 1000:.0f} ms, once per process)")
    print(f"screening.hypergeometric            {ours_s * 1000:8.1f} ms  "
          f"{ours_s / base_s:.3f}x baseline")
    print(f"largest relative difference         {rel.max():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
