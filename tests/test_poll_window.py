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
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from store.context import AppContext, make_context
from store.models import Alert, PollRun, Record


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


def test_an_ad_hoc_modified_since_does_not_move_the_weekly_pass_over_a_gap(
        tmp_path: Path, db_url: str) -> None:
    """The modified pass starts where the unbroken stretch of completed modified windows
    ends, from the first pass: an operator's ad-hoc ``--modified --since`` a few days back
    made the next weekly pass start from its end, and a retraction dated between the last
    weekly pass and that window was never fetched."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    def write(retracted: bool) -> None:
        write_article_set(corpus / "c.xml", [synthetic_article(
            3000, created=_day(60), revised=_day(7) if retracted else _day(60),
            publication_types=(("Journal Article", "Retracted Publication") if retracted
                               else ("Journal Article",)),
            comments=(("RetractionIn", 3001),) if retracted else ())])

    write(False)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url, recheck_days=30))
        wipe(ctx)
        poll(ctx, backoff_base=0.001)  # stores 3000, MEDLINE-final for the crdt poll
        # the last weekly modified pass, which ended a fortnight ago
        poll(ctx, modified=True, since=_day(20), until=_day(14), backoff_base=0.001)
        write(True)  # 3000 retracted; its modification date a week ago
        srv.reload()
        poll(ctx, modified=True, since=_day(2), backoff_base=0.001)  # an ad-hoc look
        summary = poll(ctx, modified=True, backoff_base=0.001)  # the next weekly pass
        with ctx.sessions() as session:
            modified = [(r.window_start, r.window_end) for r in session.exec(
                select(PollRun).where(PollRun.kind == "modified").order_by(col(PollRun.id)))]
            record = session.get(Record, 3000)
            alerts = [(a.kind, a.pmid, a.related_pmid) for a in session.exec(select(Alert))]
        # from the fortnight-old end minus the 3 overlap days, over the ad-hoc window's gap
        assert modified[-1] == (_day(14 + 3), today())
        assert summary.retracted == 1
        assert record is not None and record.retracted is True
        assert alerts == [("retraction", 3000, 3001)]
        # Now the coverage is unbroken: the next pass starts from today's end, as before.
        poll(ctx, modified=True, backoff_base=0.001)
        with ctx.sessions() as session:
            last = session.exec(select(PollRun).where(PollRun.kind == "modified")
                                .order_by(col(PollRun.id).desc())).first()
        assert last is not None
        assert (last.window_start, last.window_end) == (modified[-1][1] - timedelta(days=3),
                                                        today())
        ctx.dispose()
