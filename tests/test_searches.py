"""The search log (``store.searches``): the summary a methods section reports, the
``/searches`` page, its CSV, ``GET /api/searches`` and the PRISMA page's line — from runs
stored by real polls against the replay server, and from hand-made runs for the edge cases
(a changed query, a failed run, hostile error text)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import test_web
from test_poll import SINCE, make_settings, write_scenario
from test_web import api_as, as_role, db

from monitor.poll import poll
from monitor.replay_server import start_replay_server
from store.context import make_context
from store.models import PollRun
from store.searches import CSV_COLUMNS, search_summary

app = test_web.app
users = test_web.users

OLD_QUERY = "myeloma[tiab] AND maintenance[tiab]"


def _at(day: int, hour: int = 6) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def runs(app: Any) -> str:
    """Six runs: two searches with an earlier query, then the query in force (one failed
    with hostile error text), a modified-dates search and a re-fetch; returns the query."""
    query = app.state.settings.query
    rows = [
        PollRun(kind="crdt", status="completed", query=OLD_QUERY, window_start=date(2024, 1, 1),
                window_end=date(2026, 11, 1), found=120, fetched=120, new=120,
                started_at=_at(1), finished_at=_at(1, 7)),
        PollRun(kind="crdt", status="completed", query=OLD_QUERY, window_start=date(2026, 10, 29),
                window_end=date(2026, 11, 8), found=9, fetched=9, new=7, updated=2,
                started_at=_at(8), finished_at=_at(8, 7)),
        PollRun(kind="crdt", status="failed", query=query, window_start=date(2026, 11, 5),
                window_end=date(2026, 11, 15), error="=HYPERLINK(\"x\") <script>alert(1)</script>",
                started_at=_at(15), finished_at=_at(15, 7)),
        PollRun(kind="crdt", status="completed", query=query, window_start=date(2026, 11, 5),
                window_end=date(2026, 11, 22), found=14, fetched=14, new=11, updated=3,
                requests=4, retries=1, missing=[1, 2], started_at=_at(22),
                finished_at=_at(22, 7)),
        PollRun(kind="modified", status="completed", query=query,
                window_start=date(2026, 7, 25), window_end=date(2026, 11, 22), found=30,
                fetched=30, unchanged=29, retracted=1, started_at=_at(22, 8),
                finished_at=_at(22, 9)),
        PollRun(kind="recheck", status="completed", query="recheck", found=0, fetched=5,
                updated=1, started_at=_at(22, 10), finished_at=_at(22, 11)),
    ]
    with db(app) as s:
        s.add_all(rows)
        s.commit()
    return query


def test_summary_says_what_a_methods_section_needs(app: Any, runs: str) -> None:
    with db(app) as s:
        summary = search_summary(s, runs)
    assert (summary.covered_from, summary.covered_to) == (date(2024, 1, 1), date(2026, 11, 22))
    assert summary.last_search == _at(22, 7)  # the failed run does not count as covered
    assert summary.first_search == _at(1)
    assert (summary.runs, summary.failed) == (5, 1)  # the re-fetch is not a search
    assert [(q.query, q.runs, q.current) for q in summary.queries] == [
        (OLD_QUERY, 2, False), (runs, 3, True)]
    assert (summary.queries[0].first_used, summary.queries[0].last_used) == (_at(1), _at(8))
    assert summary.query_changed
    with db(app) as s:
        assert not search_summary(s, OLD_QUERY).queries[-1].current  # the newer one is not


def test_create_dates_no_completed_search_covered_are_named(
        app: Any, users: dict[str, str], runs: str) -> None:
    """An ad-hoc window past an unsearched stretch: "create dates A to B" claimed every day
    between was searched (the poll now searches the gap next; the log says it is open)."""
    with db(app) as s:
        s.add(PollRun(kind="crdt", status="completed", query=runs,
                      window_start=date(2026, 11, 26), window_end=date(2026, 11, 28),
                      started_at=_at(28), finished_at=_at(28, 7)))
        s.add(PollRun(kind="crdt", status="completed", query=runs,
                      window_start=date(2026, 11, 30), window_end=date(2026, 11, 30),
                      started_at=_at(30), finished_at=_at(30, 7)))
        s.commit()
        summary = search_summary(s, runs)
    assert summary.gaps == ((date(2026, 11, 23), date(2026, 11, 25)),
                            (date(2026, 11, 29), date(2026, 11, 29)))
    viewer = as_role(app, users, "viewer")
    doc = lxml.html.fromstring(viewer.get("/searches").text)
    assert " ".join(doc.xpath('string(//dd[@id="coverage"])').split()) == (
        "create dates 2024-01-01 to 2026-11-30 except 2026-11-23 to 2026-11-25, 2026-11-29, "
        "which no completed search covered; last completed 2026-11-30 07:00 UTC")
    prisma = " ".join(lxml.html.fromstring(viewer.get("/prisma").text).xpath(
        'string(//p[@id="searched"])').split())
    assert "to 2026-11-30 except 2026-11-23 to 2026-11-25, 2026-11-29 (not searched yet)" \
        in prisma
    api = api_as(app, users, "viewer").get("/api/searches").json()
    assert api["summary"]["gaps"] == [{"from": "2026-11-23", "to": "2026-11-25"},
                                      {"from": "2026-11-29", "to": "2026-11-29"}]


def test_merged_windows_join_what_overlaps_or_touches() -> None:
    from store.searches import merged_windows

    d = date
    assert merged_windows([(d(2026, 1, 5), d(2026, 1, 9)), (d(2026, 1, 1), d(2026, 1, 4)),
                           (d(2026, 1, 7), d(2026, 1, 8)), (d(2026, 1, 11), d(2026, 1, 12))]
                          ) == [(d(2026, 1, 1), d(2026, 1, 9)), (d(2026, 1, 11), d(2026, 1, 12))]
    assert merged_windows([]) == []


def test_page_lists_searches_and_says_when_the_query_changed(
        app: Any, users: dict[str, str], runs: str) -> None:
    viewer = as_role(app, users, "viewer")
    page = viewer.get("/searches")
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.text)
    assert doc.xpath('string(//pre[@id="current-query"])') == runs
    assert " ".join(doc.xpath('string(//dd[@id="coverage"])').split()) == (
        "create dates 2024-01-01 to 2026-11-22; last completed 2026-11-22 07:00 UTC")
    history = doc.xpath('//table[@class="query-history"]//tr[td]')
    assert [[c.text_content().strip() for c in r.xpath("td")[1:]] for r in history] == [
        ["2026-11-01 06:00 UTC", "2026-11-08 06:00 UTC", "2"],
        ["2026-11-15 06:00 UTC", "2026-11-22 08:00 UTC", "3"]]
    assert history[1].get("class") == "current"
    rows = doc.xpath('//table[@class="search-runs"]//tr[@data-run]')
    ids = [int(r.get("data-run")) for r in rows]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)  # newest first, no re-fetch
    earlier = doc.xpath('//tr[@data-run][.//span[contains(., "earlier query")]]/@data-run')
    assert sorted(map(int, earlier)) == sorted(ids)[:2]
    # hostile error text is text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    everything = lxml.html.fromstring(viewer.get("/searches?show=all").text)
    kinds = everything.xpath('//table[@class="search-runs"]//tr[@data-run]/td[2]/text()')
    assert kinds[0] == "re-fetch: records awaiting MEDLINE indexing" and len(kinds) == 6


def test_csv_is_the_whole_log_oldest_first_and_spreadsheet_safe(
        app: Any, users: dict[str, str], runs: str) -> None:
    response = as_role(app, users, "viewer").get("/searches.csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "mmlr-search-log.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["kind"] for r in rows] == ["crdt", "crdt", "crdt", "crdt", "modified", "recheck"]
    # for Excel: the same file after a byte order mark; without the flag, none
    assert not response.text.startswith("\ufeff")
    excel = as_role(app, users, "viewer").get("/searches.csv?excel=1")
    assert excel.content == "\ufeff".encode() + response.content
    assert rows[0]["query"] == OLD_QUERY and rows[5]["query"] == ""  # a re-fetch: no query
    assert rows[2]["error"].startswith("'=HYPERLINK")  # not a formula in a spreadsheet
    assert (rows[3]["missing"], rows[3]["retries"], rows[3]["window_end"]) == ("2", "1",
                                                                               "2026-11-22")


def test_api_and_login(app: Any, users: dict[str, str], runs: str) -> None:
    body = api_as(app, users, "viewer").get("/api/searches?limit=2").json()
    assert body["summary"]["covered_to"] == "2026-11-22" and body["summary"]["failed"] == 1
    assert [q["current"] for q in body["summary"]["queries"]] == [False, True]
    assert body["total"] == 5 and [r["kind"] for r in body["runs"]] == ["modified", "crdt"]
    assert api_as(app, users, "viewer").get("/api/searches?kind=all").json()["total"] == 6
    anonymous = test_web.TestClient(app, raise_server_exceptions=False)
    assert anonymous.get("/searches", follow_redirects=False).status_code == 303
    assert anonymous.get("/searches.csv", follow_redirects=False).status_code == 303
    assert anonymous.get("/api/searches").status_code == 401


def test_empty_log_says_so(app: Any, users: dict[str, str]) -> None:
    doc = lxml.html.fromstring(as_role(app, users, "viewer").get("/searches").text)
    assert doc.xpath('string(//dd[@id="coverage"])').strip() == "none completed yet"
    assert doc.xpath('//p[contains(@class, "no-runs")]')
    assert not doc.xpath('//table[@class="query-history"]')
    prisma = lxml.html.fromstring(as_role(app, users, "viewer").get("/prisma").text)
    assert "(no search completed yet)" in prisma.xpath('string(//p[@id="searched"])')


def test_real_polls_fill_the_log(tmp_path: Path, db_url: str) -> None:
    """Two polls against the replay server: the log holds their searches and the recheck,
    and the summary covers the windows they searched."""
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus) as server:
        ctx = make_context(make_settings(tmp_path, db_url, server.url))
        try:
            poll(ctx, backoff_base=0.001)
            write_scenario(corpus, 2)
            server.reload()
            poll(ctx, backoff_base=0.001)
            with ctx.sessions() as s:
                summary = search_summary(s, ctx.settings.query)
                runs = s.exec(PollRun.__table__.select()).all()  # type: ignore[attr-defined]
        finally:
            ctx.dispose()
    kinds = sorted(r.kind for r in runs)
    assert kinds == ["crdt", "crdt", "recheck"]
    assert summary.runs == 2 and summary.failed == 0 and not summary.query_changed
    assert summary.covered_from == SINCE  # MMLR_POLL_START of make_settings
    # to the day the last search ran (a run crossing midnight: not the day the test began)
    assert summary.covered_to == max(r.started_at for r in runs if r.kind == "crdt").date()
    assert summary.last_search is not None


def test_digest_says_what_was_searched_this_period(app: Any, runs: str) -> None:
    from reports.digest import build_digest
    from store.models import Decision, Record
    from store.searches import searches_between

    ctx = app.state.ctx
    with db(app) as s:
        # the period after 2026-11-10: the failed run and the completed one with the query in
        # force, after two runs with the earlier query
        period = searches_between(s, _at(10), _at(30))
        assert period == {"runs": 3, "failed": 1, "found": 14, "new": 11, "updated": 3,
                          "covered_to": "2026-11-22", "last_search": _at(22, 7).isoformat(),
                          "query_changed": True}
        # after the change: nothing changed
        assert searches_between(s, _at(20), _at(30))["query_changed"] is False
        assert searches_between(s, _at(23), _at(30))["runs"] == 0
        s.add(Record(pmid=90000041, title="Something to report"))
        s.add(Decision(pmid=90000041, decision="exclude"))
        s.commit()
    digest = build_digest(ctx)  # the first: every run so far
    assert digest.summary["searches"]["runs"] == 5
    doc = lxml.html.fromstring(digest.html)
    text = " ".join(doc.xpath('string(//div[@id="searches"])').split())
    assert text == (
        "Searches 5 PubMed searches so far (1 failed or interrupted; the next poll resumes): "
        "143 found by the searches of new records, 138 new records, 5 updated. PubMed is "
        "searched up to create date 2026-11-22 (last search completed 2026-11-22 07:00 UTC). "
        "The search query changed during the review: see the search log. Search log.")
    assert "SEARCHES\n5 PubMed searches so far" in digest.text
    # a period without any search says so, loudly
    with db(app) as s:
        s.add(Decision(pmid=90000041, decision="include"))
        s.commit()
    second = build_digest(ctx)
    assert second.id != digest.id and second.summary["searches"]["runs"] == 0
    assert "No PubMed search ran this period." in second.text
    assert "No PubMed search ran this period." in lxml.html.fromstring(second.html).xpath(
        'string(//div[@id="searches"])')


def test_an_e_utilities_address_with_credentials_is_shown_without_them(settings: Any) -> None:
    from screening.web.app import create_app

    proxied = create_app(settings.model_copy(update={
        "entrez_url": "https://proxyuser:s3cret-pw@proxy.example.org:8443/entrez/eutils/"}))
    try:
        test_web.make_user(proxied, "viewer2@example.org", "viewer")
        page = as_role(proxied, {"viewer": "viewer2@example.org"}, "viewer").get("/searches")
        assert page.status_code == 200
        assert "s3cret-pw" not in page.text and "proxyuser" not in page.text
        assert "https://proxy.example.org:8443/entrez/eutils/" in page.text
    finally:
        proxied.state.retrainer.join(timeout=30)
        proxied.state.ctx.dispose()
