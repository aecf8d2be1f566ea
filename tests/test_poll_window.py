"""Where a create-date poll starts: the end of the searched coverage, never past a gap.

An ad-hoc ``mmlr poll --since`` or ``--until`` is a back-fill: the next scheduled (default)
poll starts from the end of the unbroken stretch the completed create-date searches cover from
``MMLR_POLL_START``, so the days an ad-hoc window skipped over are searched, not lost.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlmodel import col, select
from test_poll import SINCE, _day, make_settings, today, wipe, write_scenario

from monitor.poll import poll
from monitor.replay_server import start_replay_server
from store.context import AppContext, make_context
from store.models import PollRun, Record


def _windows(ctx: AppContext) -> list[tuple[str, date | None, date | None]]:
    with ctx.sessions() as session:
        return [(r.kind, r.window_start, r.window_end) for r in session.exec(
            select(PollRun).where(PollRun.kind == "crdt").order_by(col(PollRun.id)))]


def test_an_ad_hoc_since_does_not_move_the_next_poll_over_a_gap(
        tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)  # records created 90 to 58 days ago; MMLR_POLL_START 100 ago
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        wipe(ctx)
        poll(ctx, until=_day(85), backoff_base=0.001)  # a back-fill of the first days
        poll(ctx, since=_day(70), backoff_base=0.001)  # an ad-hoc window a fortnight later
        with ctx.sessions() as session:
            before = set(session.exec(select(Record.pmid)))
        assert 1010 not in before  # created 80 days ago: in neither window
        summary = poll(ctx, backoff_base=0.001)
        # the scheduled poll starts at the end of the covered stretch (85 days ago) minus
        # the overlap, so the fortnight between the two windows is searched
        assert _windows(ctx)[-1] == ("crdt", _day(85 + 3), today())
        with ctx.sessions() as session:
            stored = set(session.exec(select(Record.pmid)))
        assert {p for p in range(1000, 1024) if p != 1005} <= stored
        assert summary.new == len(stored - before) > 0
        # Now the coverage is unbroken: the next poll starts from today, as before.
        poll(ctx, backoff_base=0.001)
        end = _windows(ctx)[-2][2]  # the previous poll's end: today, when it ran
        assert _windows(ctx)[-1] == ("crdt", end - timedelta(days=3), today())
        assert _windows(ctx)[0] == ("crdt", SINCE, _day(85))
        ctx.dispose()
