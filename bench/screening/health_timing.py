"""Benchmark of the screening-health summary with the prioritised-order stopping test.

    python bench/screening/health_timing.py [--records 20000] [--screened 10000] [--requests 20]

Builds a throw-away SQLite database with N records, the first ``--screened`` of them decided
(one decision row each, one include in 20, in score order as a queue would), then times in
the same process:
- ``screening_health`` (the queue banner, the digest, ``GET /api/screening/health``) against
  its counting part alone (every ``count_live`` query it makes, without the stopping test);
- ``prioritised_order_test`` alone (screened records, decided or voted on, in order of their
  first look, the newest unscreened arrival, the test) against the same counting part.
Prints median milliseconds and the ratios.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timing import median_ms, working_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--screened", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true",
                        help="keep the working folder (the SQLite database) for inspection")
    args = parser.parse_args()
    with working_folder("health", keep=args.keep) as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    from sqlmodel import col

    from screening.health import count_live, prioritised_order_test, screening_health
    from store.context import make_context
    from store.models import Decision, Record, utcnow
    from store.settings import Settings

    ctx = make_context(Settings(env="test", data_dir=tmp, secret_key="b" * 48))
    rng = random.Random(0)
    arrived = utcnow() - timedelta(days=60)
    scores = sorted((rng.random() for _ in range(args.records)), reverse=True)
    with ctx.sessions() as session:
        for i, score in enumerate(scores):
            decided = i < args.screened
            label = ("include" if i % 20 == 0 else "exclude") if decided else None
            session.add(Record(pmid=90_000_000 + i, title=f"Record {i}", score=score,
                               flagged=score > 0.9, audit_sample=not decided and i % 20 == 7,
                               decision=label, first_seen_at=arrived))
            if decided:
                session.add(Decision(pmid=90_000_000 + i, decision=label or "exclude",
                                     created_at=arrived + timedelta(minutes=i)))
        session.commit()

    def counts_only() -> None:
        decided = col(Record.decision).is_not(None)
        undecided = col(Record.decision).is_(None)
        with ctx.sessions() as session:
            for conds in ([], [decided], [col(Record.decision).in_(["include", "maybe"])],
                          [undecided, col(Record.flagged).is_(True)],
                          [undecided, col(Record.flagged).is_(False)],
                          [decided, col(Record.audit_sample).is_(True)],
                          [col(Record.decision).in_(["include", "maybe"]),
                           col(Record.audit_sample).is_(True)],
                          [decided, col(Record.flagged).is_(True)],
                          [col(Record.decision).in_(["include", "maybe"]),
                           col(Record.flagged).is_(True)]):
                count_live(session, *conds)

    def health() -> None:
        with ctx.sessions() as session:
            screening_health(session)

    def ranked_only() -> None:
        with ctx.sessions() as session:
            prioritised_order_test(session)

    with ctx.sessions() as session:
        print("stopping test:", prioritised_order_test(session).describe())
    base = median_ms(counts_only, args.requests)
    full = median_ms(health, args.requests)
    ranked = median_ms(ranked_only, args.requests)
    ctx.dispose()
    print(f"{args.records} records, {args.screened} screened (SQLite)")
    print(f"counting queries alone      {base:8.1f} ms")
    print(f"screening_health            {full:8.1f} ms  ({full / base:.1f}x)")
    print(f"prioritised_order_test      {ranked:8.1f} ms  ({ranked / base:.1f}x)")


if __name__ == "__main__":
    main()
