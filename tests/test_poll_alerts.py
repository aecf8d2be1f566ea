"""Alerts from CommentsCorrections links: one per notice, whatever NLM adds to the link later."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select
from test_poll import TODAY, make_settings, wipe

from monitor.poll import poll
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from store.context import make_context
from store.models import Alert, Record


def _write(corpus: Path, version: int) -> None:
    """v1: 8000, not yet MEDLINE-indexed (rechecked daily). v2: an erratum cited by its text
    alone (no PMID yet). v3: NLM has since added the erratum's PMID, 8001, to the same link."""
    created = TODAY - timedelta(days=10)
    article = synthetic_article(8000, created=created, status="In-Process",
                                comments=(("ErratumIn", 8001),) if version > 1 else ())
    if version == 2:
        article = article.replace(b'<PMID Version="1">8001</PMID>', b"")
    write_article_set(corpus / "c.xml", [article])


def test_an_erratum_link_given_its_pmid_later_is_the_same_alert(
        tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _write(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        wipe(ctx)
        poll(ctx, backoff_base=0.001)
        _write(corpus, 2)
        srv.reload()
        poll(ctx, backoff_base=0.001)  # the daily recheck re-fetches 8000
        with ctx.sessions() as session:
            first = [(a.id, a.kind, a.pmid, a.related_pmid, a.message)
                     for a in session.exec(select(Alert))]
        assert [a[1:4] for a in first] == [("erratum", 8000, None)]
        assert first[0][4].endswith("has an erratum: Synthetic")
        _write(corpus, 3)
        srv.reload()
        poll(ctx, backoff_base=0.001)
        with ctx.sessions() as session:
            alerts = [(a.id, a.kind, a.pmid, a.related_pmid, a.message)
                      for a in session.exec(select(Alert).order_by(col(Alert.id)))]
            record = session.get(Record, 8000)
        # the alert raised for the erratum now names its PMID; no second alert (or digest
        # entry) for the same erratum
        assert len(alerts) == 1
        assert alerts[0][:4] == (first[0][0], "erratum", 8000, 8001)
        assert alerts[0][4].endswith("has an erratum (PMID 8001)")
        assert record is not None and record.comments_corrections[0]["pmid"] == 8001
        # A second, other erratum on the record is news: its own alert.
        write_article_set(corpus / "c.xml", [synthetic_article(
            8000, created=TODAY - timedelta(days=10), status="In-Process",
            comments=(("ErratumIn", 8001), ("ErratumIn", 8002)))])
        srv.reload()
        poll(ctx, backoff_base=0.001)
        with ctx.sessions() as session:
            assert sorted((a.kind, a.pmid, a.related_pmid) for a in session.exec(
                select(Alert))) == [("erratum", 8000, 8001), ("erratum", 8000, 8002)]
        ctx.dispose()
