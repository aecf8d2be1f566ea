"""Benchmark: digest building and the CSV export on a large review, against plain baselines.

    python bench/digest_exports.py [--records 20000] [--analyses 12] [--reports 2000]
                                   [--repeat 3]

Baselines are measured in the same run on the same SQLite file:
* export csv — one Core ``SELECT`` of the same columns written with :mod:`csv` (the least any
  CSV export must do); ratio = ``export()`` time / baseline time.
* digest — loading the rows a digest needs (flagged records, decisions, latest pooled results)
  with plain ORM queries, without comparing or rendering; ratio = ``build_digest`` / baseline.
* full-text counts — ``--reports`` records are included and assessed by two people (votes;
  about one in eight a conflict, a third of those resolved): the one SQL statement that
  counted them with one assessor (each report's newest row, grouped by verdict and reason; it
  cannot tell votes from verdicts) versus ``store.fulltext.fulltext_counts``, which reads
  every report's rows and applies the settling rule in Python.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, text
from sqlmodel import select

from reports.digest import build_digest
from reports.exports import write_records_csv
from screening.health import screening_health
from store.context import make_context
from store.fulltext import RESOLUTION, VOTE, fulltext_counts
from store.models import Decision, Digest, FullTextAssessment, PooledResult, Record, User
from store.settings import Settings


def populate(ctx, n_records: int, n_analyses: int,  # type: ignore[no-untyped-def]
             n_reports: int) -> None:
    rng = random.Random(7)
    with ctx.sessions() as s:
        for start in range(0, n_records, 2000):
            s.add_all([Record(pmid=90_000_000 + i, title=f"Maintenance trial {i}, \"phase 3\"",
                              journal="Blood", year=2000 + i % 25, score=rng.random(),
                              flagged=rng.random() < 0.3, status="MEDLINE",
                              publication_types=["Randomized Controlled Trial"])
                       for i in range(start, min(n_records, start + 2000))])
            s.commit()
        s.add_all([Decision(pmid=90_000_000 + i, decision=rng.choice(["include", "exclude"]))
                   for i in range(0, n_records, 20)])
        for a in range(n_analyses):
            k = 3 + a % 6
            inputs = [{"trial": f"T{a}-{j}", "yi": rng.gauss(-0.4, 0.2), "sei": 0.1 + 0.05 * j,
                       "hr": 0.7, "ci_low": 0.5, "ci_high": 0.9, "weight": 100 / k}
                      for j in range(k)]
            s.add(PooledResult(analysis_key=f"a{a}", analysis_label=f"Analysis {a}", k=k,
                               estimate=-0.4, ci_low=-0.6, ci_high=-0.2, tau2=0.01, i2=20.0,
                               q=3.0, q_p=0.4, pi_low=-0.8, pi_high=0.0, inputs=inputs,
                               inputs_hash=f"h{a}"))
        s.commit()
        assessors = [User(email=f"assessor{i}@example.org", role="curator") for i in range(3)]
        s.add_all(assessors)
        s.commit()
        a, b, c = (int(u.id or 0) for u in assessors)
        step = max(1, n_records // max(1, n_reports))
        rows = []
        for i in range(0, min(n_records, n_reports * step), step):
            pmid = 90_000_000 + i
            verdict = rng.choice(["eligible", "excluded", "excluded", "not_retrieved"])
            reason = "population" if verdict == "excluded" else None
            rows.append(FullTextAssessment(pmid=pmid, user_id=a, verdict=verdict,
                                           reason=reason, kind=VOTE))
            if rng.random() < 0.125:  # a conflict, a third of them resolved
                rows.append(FullTextAssessment(pmid=pmid, user_id=b, verdict="eligible"
                                               if verdict != "eligible" else "not_retrieved",
                                               kind=VOTE))
                if rng.random() < 1 / 3:
                    rows.append(FullTextAssessment(pmid=pmid, user_id=c, verdict=verdict,
                                                   reason=reason, note="discussed",
                                                   kind=RESOLUTION))
            else:
                rows.append(FullTextAssessment(pmid=pmid, user_id=b, verdict=verdict,
                                               reason=reason, kind=VOTE))
        s.add_all(rows)
        s.exec(text(f"UPDATE records SET decision = 'include' "  # type: ignore[call-overload]
                    f"WHERE (pmid - 90000000) % {step} = 0 AND pmid < "
                    f"{90_000_000 + n_reports * step}"))
        s.commit()


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--analyses", type=int, default=12)
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(env="test", data_dir=Path(tmp), secret_key="x" * 40)
        ctx = make_context(settings)
        populate(ctx, args.records, args.analyses, args.reports)

        def baseline_csv() -> None:
            buf = io.StringIO()
            w = csv.writer(buf)
            with ctx.engine.connect() as conn:
                for row in conn.execute(text(
                        "SELECT pmid, title, journal, year, status, score, decision, flagged, "
                        "deleted, retracted, doi, publication_types, nct_ids, first_seen_at "
                        "FROM records ORDER BY pmid")):
                    w.writerow(row)

        def ours_csv() -> None:
            with ctx.sessions() as s:
                write_records_csv(s, io.StringIO())

        def baseline_digest() -> None:
            with ctx.sessions() as s:
                list(s.exec(select(Record).where(Record.flagged.is_(True))).all())  # type: ignore[attr-defined]
                list(s.exec(select(Decision)).all())
                list(s.exec(select(PooledResult)).all())

        def ours_digest() -> None:
            with ctx.sessions() as s:  # measure a first digest every time
                s.exec(delete(Digest))
                s.commit()
            build_digest(ctx, health=screening_health)  # as the entry points build it

        def baseline_fulltext() -> None:
            with ctx.engine.connect() as conn:
                conn.execute(text(
                    "SELECT f.verdict, f.reason, count(*) FROM fulltext_assessments f "
                    "JOIN records r ON r.pmid = f.pmid WHERE r.decision = 'include' AND "
                    "f.id IN (SELECT max(id) FROM fulltext_assessments GROUP BY pmid) "
                    "GROUP BY f.verdict, f.reason")).all()

        def ours_fulltext() -> None:
            with ctx.sessions() as s:
                fulltext_counts(s)

        rows = []
        for name, base, ours in (("export csv", baseline_csv, ours_csv),
                                 ("build_digest (first)", baseline_digest, ours_digest),
                                 ("fulltext counts", baseline_fulltext, ours_fulltext)):
            tb, to = best(base, args.repeat), best(ours, args.repeat)
            rows.append((name, tb, to))
        t_unchanged = best(lambda: build_digest(ctx, health=screening_health), args.repeat)
        ctx.dispose()
    print(f"{args.records} records ({math.floor(args.records * 0.3)}~ flagged), "
          f"{args.analyses} analyses, {args.reports} reports assessed by two people, "
          f"best of {args.repeat}")
    print(f"{'task':24} {'baseline s':>11} {'ours s':>9} {'ratio':>7}")
    for name, tb, to in rows:
        print(f"{name:24} {tb:11.3f} {to:9.3f} {to / tb:6.2f}x")
    print(f"{'build_digest (no change)':24} {'':>11} {t_unchanged:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
