"""Benchmark of the curator web app: request latency against the database work it wraps.

    python bench/web.py [--records 20000] [--requests 30]

Builds a throw-away SQLite database with N scored records, then times, in the same process:
- the queue page (GET /, 50 rows) against its baseline, the queue query alone
  (``screening.web.queue_view.load_queue`` + ``queue_counts``), to show what templating,
  sessions and middleware add;
- GET /api/records?limit=100 against a plain SQLAlchemy ``SELECT … LIMIT 100``;
- a login (scrypt, deliberately slow) for scale.
Prints median milliseconds and the ratios. Uses the in-process TestClient (no network).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _median_ms(fn: Callable[[], object], n: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()

    import random

    from fastapi.testclient import TestClient
    from sqlmodel import col, select

    from screening.web.app import create_app
    from screening.web.auth import add_user, hash_password, verify_password
    from screening.web.queue_view import load_queue, queue_counts, screening_health
    from store.models import Record
    from store.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="mmlr-bench-web-"))
    settings = Settings(env="test", data_dir=tmp, secret_key="b" * 48)
    app = create_app(settings)
    ctx = app.state.ctx
    rng = random.Random(0)
    with ctx.sessions() as session:
        for i in range(args.records):
            score = rng.random()
            session.add(Record(pmid=90_000_000 + i, title=f"Record {i} on myeloma maintenance",
                               journal="Blood", year=2000 + i % 25, score=score,
                               flagged=score > 0.7, authors=["Doe J", "Roe R"]))
        add_user(session, "bench@example.org", role="curator", password="bench-password")
        session.commit()

    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    response = client.post("/login", follow_redirects=False, data={
        "email": "bench@example.org", "password": "bench-password", "csrf_token": token.group(1)})
    assert response.status_code == 303
    stored = hash_password("bench-password")
    scrypt_ms = _median_ms(lambda: verify_password("bench-password", stored), 5)
    assert client.get("/").status_code == 200

    def query_only() -> None:
        with ctx.sessions() as session:
            load_queue(session, limit=51)
            queue_counts(session)

    def queries_and_health() -> None:
        with ctx.sessions() as session:
            load_queue(session, limit=51)
            queue_counts(session)
            screening_health(session)

    def plain_select() -> None:
        with ctx.sessions() as session:
            list(session.exec(select(Record).order_by(col(Record.score).desc()).limit(100)))

    rows = [
        ("queue page vs queue queries", query_only, lambda: client.get("/")),
        ("queue page vs queries + health", queries_and_health, lambda: client.get("/")),
        ("GET /api/records?limit=100", plain_select, lambda: client.get("/api/records?limit=100")),
    ]
    print(f"{args.records} records, SQLite, median of {args.requests} requests")
    print(f"{'task':32} {'baseline ms':>12} {'ours ms':>9} {'ratio':>7}")
    for name, base, ours in rows:
        b, o = _median_ms(base, args.requests), _median_ms(ours, args.requests)
        print(f"{name:32} {b:12.1f} {o:9.1f} {o / b:6.1f}x")
    print(f"{'password check (scrypt n=2^14)':32} {'':12} {scrypt_ms:9.1f}")
    ctx.dispose()


if __name__ == "__main__":
    main()
