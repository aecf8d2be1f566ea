"""Benchmark of the curator web app: request latency against the database work it wraps.

    python bench/web.py [--records 20000] [--requests 30] [--only TEXT …] [--pg ADMIN_URL] [--keep]

Builds a throw-away SQLite database with N scored records (or, with ``--pg``, a throw-away
database on that PostgreSQL server, dropped at the end; the working folder is removed at
the end too, unless ``--keep``), then times, in the same process
(``--only`` keeps the tasks whose name holds one of the texts, e.g. ``--only api/records``):
- the queue page (GET /, 50 rows) against its baseline, the queue alone
  (``screening.queue.queue`` + ``queue_counts``), to show what templating, sessions and
  middleware add;
- the queue's counts and the health banner's figures read in one pass over the screening
  pool (``queue_page_figures``, since 2026-12-02) against each reading the pool itself;
- matching one page of 50 records against the trials (``matches_for_records``, part of
  ``queue``) against the queue;
- GET /api/records?limit=100 against a plain SQLAlchemy ``SELECT … LIMIT 100``, also with an
  empty ``MatchMemo`` before each request (every record's trial matches computed, as for a
  page nobody has asked for since the trials last changed), and the request with
  ``status=undecided`` (the screening pool's subquery) and with ``q=`` against the same
  baseline;
- the digest's pass for possible reports of trials in the review
  (``store.trial_match.unlinked_strong_matches``, every live record against ``--trials``
  trials) against loading the columns it reads of the same records;
- the cookie login check of every signed-in request (the user, and since migration 0011 the
  open server-side login row of the cookie's token, ``screening.web.deps.session_user``)
  against the user lookup alone (what the check read before), with ``--logins`` rows in
  ``login_sessions``;
- the PRISMA flow's counts with the stopping test that decides the exclusions by automation
  (``prisma_counts`` + ``screening.health.stopping_supported``, what ``/prisma.svg`` and
  ``mmlr export prisma`` compute since 2026-12-01) against the counts alone, with
  ``--decided`` records screened in queue order;
- what /estimates adds since 2026-12-01 to say which analyses the next pool run changes
  (``reports.selection.pending_changes``: every analysis' selection rules run on the stored
  estimates, compared with its newest snapshot) against reading those snapshots alone
  (``latest_results``), on the seed evidence pooled once and one estimate verified since;
- ``/search`` (``screening.record_search.search``, a case-insensitive substring scan of every
  record's searched fields) against loading the columns the trial matcher reads, for two
  words every record holds and for a phrase few hold, and the page against the queue page;
- the screening counts of the screening pool (``screening.health.count_pool``: every live
  record but the previous version's reports, found through the seed trials' audit rows, since
  2026-12-02) against the same counts of every live record (``count_live``), with ``--audit``
  rows in the audit trail;
- with ``--pg``, the queue alone, the queue page and GET /api/records?limit=100 without
  migration 0017's index (``ix_records_queue_order``, dropped) against the same with it
  (created again) on the same database, three blocks each way, alternately;
- on either engine, the queue alone and the queue page without and with migration 0018's
  partial index of the waiting audit sample (``ix_records_audit_queue``), the same way
  (``--audit-sample`` puts a share of the low-score records in the sample; by default none
  waits, as once the audit is screened);
- a login (scrypt, deliberately slow) for scale.
Records carry a ~1,000-character abstract; one in 50 names a trial in its title and one in
50 lists a trial's registration, so the matcher finds something.
Prints median milliseconds and the ratios. Uses the in-process TestClient (no network).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timing import BENCH_PASSWORD, median_ms, working_folder

# The project first: this folder's own screening/ (the screening benchmark) must not stand in
# for the package when a module imports screening.stopping.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--decided", type=int, default=2000,
                        help="records screened, highest scores first (1 in 20 included)")
    parser.add_argument("--audit", type=int, default=60000,
                        help="rows in the audit trail (a busy review's decisions and logins)")
    parser.add_argument("--audit-sample", type=float, default=0.0, metavar="SHARE",
                        help="share of the records below the flag threshold in the random "
                             "audit sample (default 0: none waiting, as once it is screened)")
    parser.add_argument("--logins", type=int, default=1000,
                        help="rows in login_sessions (a day's logins of a busy team, at most)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="time only the tasks whose name holds TEXT (repeatable)")
    parser.add_argument("--pg", default=None, metavar="ADMIN_URL",
                        help="PostgreSQL admin URL: the bench creates its database there")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working folder (the SQLite database, ~40 MB at the "
                             "default size) for inspection, and print where it is")
    args = parser.parse_args()
    # Removed however the run ends (an error, Ctrl-C): each run left ~40 MB in /tmp.
    with working_folder("web", keep=args.keep) as tmp:
        if args.pg:
            from ingest import _drop, _pg_database

            database_url, pg_name = _pg_database(args.pg)
            try:
                run(args, database_url, tmp)
            finally:
                _drop(args.pg, pg_name)
        else:
            run(args, None, tmp)


def run(args: argparse.Namespace, database_url: str | None, tmp: Path) -> None:
    """Build the database (SQLite in the working folder ``tmp`` unless ``database_url``) and
    time."""

    import random

    from fastapi.testclient import TestClient
    from sqlmodel import col, select

    from reports.prisma import prisma_counts
    from screening.health import stopping_supported
    from screening.queue import queue
    from screening.web.app import create_app
    from screening.web.auth import (
        _SCRYPT_N,
        _SCRYPT_P,
        _SCRYPT_R,
        add_user,
        hash_password,
        hash_token,
        verify_password,
    )
    from screening.web.deps import (
        SESSION_TOKEN_KEY,
        SESSION_USER_KEY,
        SESSION_VERSION_KEY,
        session_user,
    )
    from screening.web.queue_view import queue_counts, queue_page_figures, screening_health
    from store.models import Decision, LoginSession, Record, Trial, TrialReport, User
    from store.settings import Settings
    from store.trial_match import matches_for_records, unlinked_strong_matches

    settings = Settings(env="test", data_dir=tmp, secret_key="b" * 48,
                        **({"database_url": database_url} if database_url else {}))
    app = create_app(settings)
    ctx = app.state.ctx
    rng = random.Random(0)
    words = ["maintenance", "lenalidomide", "thalidomide", "myeloma", "randomised", "survival",
             "progression", "transplant", "patients", "months", "hazard", "ratio", "interval",
             "placebo", "observation", "trial", "response", "induction"]
    with ctx.sessions() as session:
        for t in range(args.trials):
            trial = Trial(name=f"BENCH-MM{t:02d}", drug="lenalidomide", setting="post_asct",
                          registry_ids=[f"NCT0{t:07d}"])
            session.add(trial)
            session.flush()
            session.add(TrialReport(trial_id=trial.id, pmid=80_000_000 + t, citation="bench"))
        # Its own generator: the records' other fields stay as without an audit sample.
        audit_rng = random.Random(1)
        for i in range(args.records):
            score = rng.random()
            named = f" in BENCH-MM{i % args.trials:02d}" if args.trials and i % 50 == 0 else ""
            listed = [f"NCT0{i % args.trials:07d}"] if args.trials and i % 50 == 25 else []
            session.add(Record(pmid=90_000_000 + i,
                               title=f"Record {i} on myeloma maintenance{named}",
                               abstract=" ".join(rng.choice(words) for _ in range(120)),
                               nct_ids=listed, journal="Blood", year=2000 + i % 25, score=score,
                               flagged=score > 0.7, authors=["Doe J", "Roe R"],
                               audit_sample=score <= 0.7
                               and audit_rng.random() < args.audit_sample))
        add_user(session, "bench@example.org", role="curator", password=BENCH_PASSWORD)
        session.commit()
        # Screened from the top of the queue, as curators do: what the stopping test reads.
        from datetime import UTC, datetime, timedelta

        start = datetime(2026, 1, 1, tzinfo=UTC)
        top = session.exec(select(Record).order_by(col(Record.score).desc())
                           .limit(args.decided)).all()
        for n, record in enumerate(top):
            record.decision = "include" if n % 20 == 0 else "exclude"
            session.add(Decision(pmid=record.pmid, decision=record.decision, rank_shown=1,
                                 created_at=start + timedelta(minutes=n)))
        session.commit()

    from sqlalchemy import insert

    from monitor.bootstrap import load_seed_evidence
    from reports.pool import pool_all
    from reports.selection import latest_results, pending_changes
    from store.models import AuditLog, Estimate

    with ctx.sessions() as session:
        load_seed_evidence(session)
        session.execute(insert(AuditLog), [
            {"actor": "bench@example.org", "action": "decision.record", "object_type": "record",
             "object_id": str(90_000_000 + n % max(1, args.records)), "details": {}}
            for n in range(args.audit)])
        session.commit()
    pool_all(ctx)
    with ctx.sessions() as session:
        # One estimate entered again since the pool run (a correction keeps the numbers in a
        # new row), so the comparison has something to find.
        first = session.exec(select(Estimate).order_by(col(Estimate.id))).first()
        assert first is not None
        session.add(Estimate(**first.model_dump(exclude={"id"})))
        session.commit()

    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    response = client.post("/login", follow_redirects=False, data={
        "email": "bench@example.org", "password": BENCH_PASSWORD, "csrf_token": token.group(1)})
    assert response.status_code == 303
    stored = hash_password(BENCH_PASSWORD)
    scrypt_ms = median_ms(lambda: verify_password(BENCH_PASSWORD, stored), 5)
    assert client.get("/").status_code == 200

    with ctx.sessions() as session:
        user = session.exec(select(User).where(User.email == "bench@example.org")).one()
        uid = int(user.id or 0)
        for n in range(args.logins):
            session.add(LoginSession(token_hash=hash_token(f"old-{n}"), user_id=uid))
        session.add(LoginSession(token_hash=hash_token("bench-token"), user_id=uid))
        session.commit()

    from types import SimpleNamespace

    # What session_user reads of a request: its (decoded) session cookie.
    cookie = SimpleNamespace(session={SESSION_USER_KEY: uid, SESSION_VERSION_KEY: 0,
                                      SESSION_TOKEN_KEY: "bench-token"})

    def user_lookup() -> None:
        with ctx.sessions() as session:
            session.get(User, uid)

    def login_check() -> None:
        with ctx.sessions() as session:
            assert session_user(cookie, session) is not None  # type: ignore[arg-type]

    def query_only() -> None:
        with ctx.sessions() as session:
            queue(session, limit=51)
            queue_counts(session)

    def queries_and_health() -> None:  # what the page reads, as it reads it
        with ctx.sessions() as session:
            queue(session, limit=51)
            figures = queue_page_figures(session, dual=False, screener_id=None)
            queue_counts(session, figures=figures)
            screening_health(session, figures=figures)

    def counts_and_health_apart() -> None:  # each reads the pool itself (before 2026-12-02)
        with ctx.sessions() as session:
            queue_counts(session)
            screening_health(session)

    def counts_and_health_one_pass() -> None:
        with ctx.sessions() as session:
            figures = queue_page_figures(session, dual=False, screener_id=None)
            queue_counts(session, figures=figures)
            screening_health(session, figures=figures)

    def plain_select() -> None:
        with ctx.sessions() as session:
            list(session.exec(select(Record).order_by(col(Record.score).desc()).limit(100)))

    def load_records() -> None:  # the columns the matcher reads, of every live record
        with ctx.sessions() as session:
            list(session.exec(select(Record.pmid, Record.title, Record.abstract, Record.nct_ids,
                                     Record.comments_corrections)
                              .where(col(Record.deleted).is_(False))))

    def queue_only() -> None:
        with ctx.sessions() as session:
            queue(session, limit=50)

    with ctx.sessions() as session:
        page = list(session.exec(select(Record).order_by(col(Record.score).desc()).limit(50)))

    def page_matches() -> None:
        with ctx.sessions() as session:
            matches_for_records(session, page)

    def digest_matches() -> None:
        with ctx.sessions() as session:
            unlinked_strong_matches(session)

    def flow_counts() -> None:
        with ctx.sessions() as session:
            prisma_counts(session)

    def flow_with_stopping_test() -> None:
        with ctx.sessions() as session:
            prisma_counts(session, automation_stops=stopping_supported(session))

    def snapshots_only() -> None:
        with ctx.sessions() as session:
            latest_results(session)

    def snapshots_and_pending() -> None:
        with ctx.sessions() as session:
            latest_results(session)
            pending_changes(session)

    from screening.health import count_live, count_pool

    # The counts of the screening-health banner and the queue's summary.
    undecided, decided = col(Record.decision).is_(None), col(Record.decision).is_not(None)
    flagged = col(Record.flagged).is_(True)
    conditions = [(), (decided,), (undecided,), (undecided, flagged), (decided, flagged)]

    def live_counts() -> None:
        with ctx.sessions() as session:
            for where in conditions:
                count_live(session, *where)

    def pool_counts() -> None:
        with ctx.sessions() as session:
            for where in conditions:
                count_pool(session, *where)

    from screening.record_search import search

    def search_two_words() -> None:  # every record holds both: the whole table is matched
        with ctx.sessions() as session:
            search(session, "lenalidomide survival", limit=51)

    def search_rare_phrase() -> None:  # few records match: the scan finds little
        with ctx.sessions() as session:
            search(session, '"record 1234 on"', limit=51)

    from store.trial_match import MatchMemo

    def api_records_cold() -> None:  # every record's trial matches computed again
        app.state.trial_matches = MatchMemo()
        client.get("/api/records?limit=100")

    with ctx.sessions() as session:
        print(f"{len(pending_changes(session))} analyses with pending changes")
        found = len(unlinked_strong_matches(session))
    print(f"{found} records with a strong trial match")
    rows = [
        ("queue page vs queue queries", query_only, lambda: client.get("/")),
        ("queue page vs queries + health", queries_and_health, lambda: client.get("/")),
        ("queue figures: one pass vs apart", counts_and_health_apart,
         counts_and_health_one_pass),
        ("GET /api/records?limit=100", plain_select, lambda: client.get("/api/records?limit=100")),
        ("GET /api/records?limit=100, matches not kept", plain_select, api_records_cold),
        ("GET /api/records?status=undecided", plain_select,
         lambda: client.get("/api/records?status=undecided&limit=100")),
        ("GET /api/records?q=lenalidomide", plain_select,
         lambda: client.get("/api/records?q=lenalidomide&limit=100")),
        ("match 50 records vs queue()", queue_only, page_matches),
        ("digest trial matches vs loading", load_records, digest_matches),
        ("cookie login check vs user only", user_lookup, login_check),
        ("PRISMA + stopping test vs counts", flow_counts, flow_with_stopping_test),
        ("pending changes vs snapshots", snapshots_only, snapshots_and_pending),
        ("GET /estimates vs snapshots", snapshots_only, lambda: client.get("/estimates")),
        ("search 2 common words vs load", load_records, search_two_words),
        ("search rare phrase vs load", load_records, search_rare_phrase),
        ("5 pool counts vs live counts", live_counts, pool_counts),
        ("GET /search vs GET /", lambda: client.get("/"),
         lambda: client.get("/search?q=lenalidomide+survival")),
    ]
    rows = [row for row in rows
            if not args.only or any(text.lower() in row[0].lower() for text in args.only)]
    engine = "PostgreSQL" if database_url else "SQLite"
    print(f"{args.records} records ({args.decided} screened, {args.audit} audit rows), {engine}, "
          f"median of {args.requests} requests")
    print(f"{'task':32} {'baseline ms':>12} {'ours ms':>9} {'ratio':>7}")
    for name, base, ours in rows:
        b, o = median_ms(base, args.requests), median_ms(ours, args.requests)
        print(f"{name:32} {b:12.1f} {o:9.1f} {o / b:6.1f}x")
    index_rows = [("queue()", queue_only), ("GET /", lambda: client.get("/")),
                  ("GET /api/records?limit=100", lambda: client.get("/api/records?limit=100"))]
    from store.models import AUDIT_QUEUE_INDEXES, QUEUE_ORDER_INDEX
    from store.schema_objects import exists_on

    # Migration 0017's index exists on PostgreSQL only; 0018's on both engines.
    toggled = [("0017", QUEUE_ORDER_INDEX, index_rows)] if database_url else []
    toggled += [("0018", index, index_rows[:2]) for index in AUDIT_QUEUE_INDEXES
                if exists_on(index, ctx.engine.dialect.name)]
    for migration, index, tasks in toggled:
        for name, task in tasks:
            name = f"{name}, {migration} index off vs on"
            if args.only and not any(text.lower() in name.lower() for text in args.only):
                continue
            b, o = _index_off_on(ctx.engine, index, task, args.requests)
            print(f"{name:32} {b:12.1f} {o:9.1f} {o / b:6.1f}x")
    cost = f"2^{_SCRYPT_N.bit_length() - 1}x{_SCRYPT_R}x{_SCRYPT_P}"
    print(f"{f'password check (scrypt {cost})':32} {'':12} {scrypt_ms:9.1f}")
    ctx.dispose()


def _index_off_on(engine: Any, index: Any, task: Callable[[], object], n: int,
                  rounds: int = 3) -> tuple[float, float]:
    """Medians of ``task`` without and with ``index`` (the models' declaration of a
    migration's index, dropped and created again; on PostgreSQL the table analysed after
    each, while SQLite, which the app never analyses, keeps planning without statistics), on
    the same database: ``rounds`` blocks of ``n`` calls each way, alternately, so a shared
    machine's load drifting during the run weighs on both; the median of each way's block
    medians."""
    off, on = [], []
    for _ in range(rounds):
        for present, times in ((False, off), (True, on)):
            with engine.begin() as conn:
                if present:
                    index.create(conn, checkfirst=True)
                else:
                    index.drop(conn, checkfirst=True)
                if engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("ANALYZE records")
            times.append(median_ms(task, n))
    return statistics.median(off), statistics.median(on)


if __name__ == "__main__":
    main()
