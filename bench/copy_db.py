"""Benchmark of ``mmlr copy-db``: moving a review between databases, against a raw copy.

    python bench/copy_db.py [--records 20000] [--pg postgresql+psycopg://user@host:port/db]

Builds a throw-away SQLite review with N scored records (a ~1,000-character abstract, MeSH
and author lists each), one score row per record and 2,000 decisions, then times in the same
run:
- ``copy_database`` SQLite -> a new SQLite file (snapshot read, batched inserts in one
  transaction, and the row-by-row comparison of every table before the commit);
- the baseline: reading every table once through SQLAlchemy (the values converted as
  the copy reads them), the least any copy that checks values must do; the copy reads the
  source twice (copy, comparison) and the target once, and writes it once;
- for scale, SQLite's own online backup (``sqlite3.Connection.backup``) of the same file, a
  page copy that neither converts values nor checks them (and cannot change engines);
- with ``--pg`` (an empty database it may fill; its tables are dropped afterwards), SQLite ->
  PostgreSQL, the move the command exists for.
Prints seconds, the ratios to the baseline and rows per second.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import working_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--pg", default=None, help="an empty PostgreSQL database to copy into")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working folder (the SQLite files) for inspection")
    args = parser.parse_args()
    with working_folder("copy", keep=args.keep) as tmp:
        run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    from sqlalchemy import text

    from store.copy_db import copy_database, copy_tables, target_engine
    from store.models import Decision, ModelVersion, Record, Score
    from store.settings import Settings

    settings = Settings(env="test", data_dir=tmp, secret_key="b" * 48)
    from store.context import make_context

    ctx = make_context(settings)
    rng = random.Random(0)
    words = ["maintenance", "lenalidomide", "thalidomide", "myeloma", "randomised", "survival",
             "progression", "transplant", "patients", "months", "hazard", "ratio", "Ødegård"]
    with ctx.sessions() as session:
        model = ModelVersion(config={"C": 0.11}, artifact=rng.randbytes(200_000))
        session.add(model)
        session.flush()
        for i in range(args.records):
            score = rng.random()
            session.add(Record(pmid=90_000_000 + i, title=f"Record {i} on myeloma maintenance",
                               abstract=" ".join(rng.choice(words) for _ in range(120)),
                               authors=["Doe J", "Roe R", "Müller H"], journal="Blood",
                               mesh=[{"descriptor": "Multiple Myeloma", "major": True,
                                      "qualifiers": ["therapy"]}], year=2000 + i % 25,
                               score=score, score_model_version_id=model.id))
            session.add(Score(pmid=90_000_000 + i, model_version_id=model.id, score=score))
            if i < 2000:
                session.add(Decision(pmid=90_000_000 + i, decision="exclude",
                                     model_version_id=model.id))
        session.commit()
    source_path = tmp / "mmlr.sqlite3"
    rows = 0
    with ctx.engine.connect() as conn:
        for table in copy_tables():
            rows += conn.execute(text(f'SELECT COUNT(*) FROM "{table.name}"')).scalar_one()

    def backup() -> float:
        start = time.perf_counter()
        with sqlite3.connect(source_path) as src, sqlite3.connect(tmp / "backup.sqlite3") as dst:
            src.backup(dst)
        return time.perf_counter() - start

    def read_all() -> float:
        start = time.perf_counter()
        with ctx.engine.connect() as conn:
            for table in copy_tables():
                for _ in conn.execute(table.select()):
                    pass
        return time.perf_counter() - start

    def copy(url: str) -> float:
        target = target_engine(url)
        try:
            start = time.perf_counter()
            copy_database(ctx.engine, target)
            return time.perf_counter() - start
        finally:
            target.dispose()

    raw, baseline = backup(), read_all()
    to_sqlite = copy(f"sqlite:///{tmp / 'copy.sqlite3'}")
    print(f"{rows} rows ({args.records} records) in {source_path.stat().st_size / 1e6:.1f} MB")
    print(f"read every table (baseline)  {baseline:7.2f} s")
    print(f"sqlite3 page backup          {raw:7.2f} s  {raw / baseline:6.2f}x the baseline")
    print(f"copy-db SQLite -> SQLite     {to_sqlite:7.2f} s  {to_sqlite / baseline:6.2f}x the "
          f"baseline  {rows / to_sqlite:8.0f} rows/s")
    if args.pg:
        to_pg = copy(args.pg)
        print(f"copy-db SQLite -> PostgreSQL {to_pg:7.2f} s  {to_pg / baseline:6.2f}x the "
              f"baseline  {rows / to_pg:8.0f} rows/s")
        from sqlalchemy import create_engine
        pg = create_engine(args.pg)
        with pg.begin() as conn:
            for table in reversed(copy_tables()):
                conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        pg.dispose()
    ctx.dispose()


if __name__ == "__main__":
    main()
