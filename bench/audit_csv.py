"""Benchmark of the audit trail's CSV (``/admin/audit.csv``): streamed in batches against
the whole trail read at once, as the route did until 2026-12-04.

    python bench/audit_csv.py [--rows 200000] [--batch 1000]

Builds a throw-away SQLite review whose audit trail has N rows (logins, decisions and pool
runs with a few details each, many sharing a second), then in the same run, for the whole
trail:
- the baseline: every row read in one statement, then the whole file written into memory;
- the stream (``store.audit.audit_row_batches`` and ``audit_csv_chunks``, what the route
  sends), each piece dropped once made, as the server does once it is sent.
Prints the peak of Python's memory (``tracemalloc``, measured in a run of its own) and the
time of each, and their ratios to the baseline; checks the two files are the same.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import working_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with working_folder("audit") as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    from sqlalchemy import insert

    from store.audit import AuditQuery, audit_csv_chunks, audit_row_batches, audit_rows
    from store.context import make_context
    from store.models import AuditLog
    from store.settings import Settings

    ctx = make_context(Settings(env="test", data_dir=tmp, secret_key="b" * 48))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    kinds = [("auth.login", "user", {"client": "203.0.113.9"}),
             ("decision.add", "record", {"decision": "exclude", "score_shown": 0.0123456789,
                                         "rank_shown": 17, "note": "not a maintenance RCT"}),
             ("pool.requested", None, {"analyses": 24, "changed": ["lenalidomide PFS"]})]
    with ctx.engine.begin() as conn:
        rows = []
        for i in range(args.rows):
            action, kind, details = kinds[i % 3]
            rows.append({"at": start + timedelta(seconds=i // 4), "actor": "curator@example.org",
                         "action": action, "object_type": kind, "object_id": str(90_000_000 + i),
                         "details": details})
            if len(rows) == 10_000:
                conn.execute(insert(AuditLog), rows)
                rows = []
        if rows:
            conn.execute(insert(AuditLog), rows)

    def whole() -> str:
        with ctx.sessions() as session:
            found = audit_rows(session, AuditQuery())
            buffer = io.StringIO()
            for chunk in audit_csv_chunks([found]):
                buffer.write(chunk)
            text = buffer.getvalue()
            return f"{len(text.encode()) / 1e6:.1f} MB {hashlib.sha256(text.encode()).hexdigest()}"

    def stream() -> str:
        digest, size = hashlib.sha256(), 0
        for chunk in audit_csv_chunks(audit_row_batches(ctx.sessions, AuditQuery(),
                                                        size=args.batch)):
            data = chunk.encode()
            digest.update(data)
            size += len(data)
        return f"{size / 1e6:.1f} MB {digest.hexdigest()}"

    def measure(fn: Callable[[], str]) -> tuple[float, float, str]:
        tracemalloc.start()
        fn()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        began = time.perf_counter()
        out = fn()
        return peak / 1e6, time.perf_counter() - began, out

    base_mb, base_s, base_out = measure(whole)
    mb, s, out = measure(stream)
    assert out == base_out, f"the streamed file differs: {out} against {base_out}"
    print(f"{args.rows} audit rows, batches of {args.batch}; the file is "
          f"{base_out.split(' MB')[0]} MB, the same both ways")
    print(f"whole trail at once (baseline)  peak {base_mb:7.1f} MB  {base_s:6.2f} s")
    print(f"streamed in batches             peak {mb:7.1f} MB  {s:6.2f} s   "
          f"{mb / base_mb:.3f}x the memory, {s / base_s:.2f}x the time")


if __name__ == "__main__":
    main()
