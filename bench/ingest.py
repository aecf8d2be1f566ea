"""Ingestion benchmark: end-to-end records/s and HTTP requests of ``poll()``.

    python bench/ingest.py [--records 3000] [--pg postgresql+psycopg://postgres@127.0.0.1/postgres]

A synthetic corpus (``write_synthetic_corpus``) is served by the replay server on loopback. The
server's rate limit is switched off and the client rate set to 1,000/s for the throughput runs,
so the numbers measure our code, not NCBI's 3 requests/s (at which 3,000 records take ~6 s of
pure waiting). Printed per database:

- end-to-end records/s of a first poll into an empty database (search, fetch, parse, upsert),
  against a baseline measured in the same run: the same HTTP fetches + parsing without the
  database (the ceiling the database path can reach);
- HTTP requests per 1,000 new records against the minimum (1 esearch per window +
  ceil(N/200) efetch);
- requests of an incremental poll with nothing new (goal: 1 per window).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.entrez import EntrezClient  # noqa: E402
from monitor.poll import poll  # noqa: E402
from monitor.pubmed_xml import parse_all  # noqa: E402
from monitor.replay_server import start_replay_server, write_synthetic_corpus  # noqa: E402
from store.context import make_context  # noqa: E402
from store.settings import Settings  # noqa: E402


def _settings(data: Path, db_url: str, url: str) -> Settings:
    return Settings(env="test", data_dir=data, database_url=db_url, entrez_url=url,
                    entrez_email="bench@example.org", entrez_rate=1000.0,
                    poll_start="2025/01/01", recheck_days=1)


def baseline_fetch_parse(settings: Settings, pmids: list[int]) -> float:
    """Records/s of HTTP efetch + parsing alone (no database)."""
    started = time.perf_counter()
    n = 0
    with EntrezClient(settings) as client:
        for i in range(0, len(pmids), settings.entrez_batch_size):
            body = client.efetch_xml(pmids[i:i + settings.entrez_batch_size])
            n += len(parse_all(body).records)
    return n / (time.perf_counter() - started)


def run(db_url: str, label: str, url: str, data: Path, pmids: list[int]) -> dict[str, float]:
    settings = _settings(data, db_url, url)
    ctx = make_context(settings)
    try:
        started = time.perf_counter()
        first = poll(ctx)
        elapsed = time.perf_counter() - started
        second = poll(ctx)
    finally:
        ctx.dispose()
    n = first.new
    minimum = first.windows + math.ceil(n / settings.entrez_batch_size)
    result = {
        "records": n, "seconds": elapsed, "rate": n / elapsed,
        "requests": first.requests, "minimum": minimum,
        "per_1000": first.requests * 1000 / n, "min_per_1000": minimum * 1000 / n,
        "incremental_requests": second.requests, "incremental_windows": second.windows,
    }
    print(f"{label:10} {n} records in {elapsed:.2f} s = {result['rate']:.0f} records/s; "
          f"requests {first.requests} (minimum {minimum}) = {result['per_1000']:.2f} per 1,000 "
          f"new records (minimum {result['min_per_1000']:.2f}); incremental poll with nothing "
          f"new: {second.requests} request(s) over {second.windows} window(s)")
    return result


def _pg_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mmlr_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def _drop(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--pg", default=None, help="PostgreSQL admin URL (creates a database)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        write_synthetic_corpus(tmp_path / "corpus", args.records)
        with start_replay_server(tmp_path / "corpus", rate_limit=None) as srv:
            pmids = sorted(srv.corpus.records)
            base = baseline_fetch_parse(_settings(tmp_path / "b", "sqlite:///unused", srv.url),
                                        pmids)
            print(f"baseline   HTTP fetch + parse without a database: {base:.0f} records/s")
            sqlite = run(f"sqlite:///{tmp_path / 'bench.sqlite3'}", "SQLite", srv.url,
                         tmp_path / "d1", pmids)
            print(f"           SQLite / baseline = {sqlite['rate'] / base:.2f}; "
                  f"goal 2,000 records/s: {sqlite['rate'] / 2000:.2f}x")
            if args.pg:
                url, name = _pg_database(args.pg)
                try:
                    pg = run(url, "PostgreSQL", srv.url, tmp_path / "d2", pmids)
                    print(f"           PostgreSQL / baseline = {pg['rate'] / base:.2f}")
                finally:
                    _drop(args.pg, name)


if __name__ == "__main__":
    main()
