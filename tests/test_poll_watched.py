"""Corrections of the reports an analysis rests on, whether or not the query finds them.

1. The modified pass re-fetches, by PMID, every trial report's PMID and every included
   record's: the ``[mdat]`` search only finds what the query matches, and seed reports are
   older than ``poll_start``. (The replay server's ``set_outside_query`` makes records the
   query does not match.)
2. A *notice* record names what it corrects (``RetractionOf``, ``ErratumFor``,
   ``ExpressionOfConcernFor``): a new notice alerts about a report in use at once, and the
   reverse link NLM adds later to the report does not alert twice. Real notices from
   ``../shared/data/pubmed``: erratum 38833988 (ErratumFor 33279609), erratum 38962805
   (ErratumFor 38446048) and retraction notice 41578200 (RetractionOf 21595987); there is no
   real expression-of-concern notice there, so that one is synthetic.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from test_poll import _day, make_settings, wipe

from monitor.poll import poll, watched_pmids
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from store.context import AppContext, make_context
from store.models import Alert, Decision, PollRun, Record, TrialReport

# 4000: a seed trial report from 2012, never stored as a record (older than poll_start);
# 4001: a record added by PMID list and included by a curator; 4002: a trial report's record
# NLM will delete; 4003: a plain record the query matches. The query matches none of 4000-4002.
SEED_CREATED = date(2012, 5, 10)
WATCHED = [4000, 4001, 4002]


def write_watched_corpus(dest: Path, version: int) -> None:
    """v1: nothing corrected. v2 (PubMed yesterday): 4000 retracted, 4001 has an erratum,
    4003 got MeSH; 4002 is deleted by the test through the server (``set_removed``)."""
    if dest.exists():
        shutil.rmtree(dest)
    changed = _day(1) if version == 2 else None
    write_article_set(dest / "watched.xml", [
        synthetic_article(4000, created=SEED_CREATED, revised=changed,
                          title="Lenalidomide maintenance after ASCT: phase 3 (synthetic)",
                          publication_types=("Journal Article", "Retracted Publication")
                          if changed else ("Journal Article",),
                          comments=(("RetractionIn", 4100),) if changed else ()),
        synthetic_article(4001, created=_day(60), revised=changed,
                          comments=(("ErratumIn", 4101),) if changed else ()),
        synthetic_article(4002, created=_day(60)),
        synthetic_article(4003, created=_day(60), revised=changed,
                          mesh=("Multiple Myeloma",) if changed else ()),
    ])


def alerts(ctx: AppContext) -> dict[tuple[str, int, int | None], bool]:
    with ctx.sessions() as session:
        return {(a.kind, a.pmid, a.related_pmid): a.in_analysis
                for a in session.exec(select(Alert))}


def set_reports(ctx: AppContext, pmids: list[int]) -> None:
    """The synthetic trial of ``wipe`` gets reports with these PMIDs (instead of 1101)."""
    with ctx.sessions() as session:
        first = session.exec(select(TrialReport)).one()
        first.pmid = pmids[0]
        session.add(first)
        for pmid in pmids[1:]:
            session.add(TrialReport(trial_id=first.trial_id, pmid=pmid, citation="synthetic"))
        session.commit()


def include(ctx: AppContext, pmid: int) -> None:
    with ctx.sessions() as session:
        rec = session.get(Record, pmid)
        assert rec is not None
        rec.decision = "include"
        session.add(rec)
        session.add(Decision(pmid=pmid, decision="include"))
        session.commit()


def efetch_ids(srv: Any) -> list[str]:
    return [p["id"][0] for p in srv.stats.params if "id" in p and "term" not in p]


def test_modified_pass_refetches_reports_and_includes_the_query_misses(
        tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "watched"
    write_watched_corpus(corpus, 1)
    with start_replay_server(corpus) as srv:  # NCBI's 3/s limit, the default client rate
        srv.set_outside_query(WATCHED)
        ctx = make_context(make_settings(tmp_path, db_url, srv.url, recheck_days=30,
                                         entrez_rate=None))
        wipe(ctx)
        set_reports(ctx, [4000, 4002])
        first = poll(ctx, backoff_base=0.001)
        assert first.found == 1  # 4003: the query finds nothing else
        poll(ctx, pmids=[4001, 4002], backoff_base=0.001)  # added by hand, by PMID
        include(ctx, 4001)
        assert watched_pmids(ctx) == WATCHED

        write_watched_corpus(corpus, 2)
        srv.reload()
        srv.set_removed({4002})
        srv.reset_stats()
        summary = poll(ctx, modified=True, backoff_base=0.001)
        assert srv.stats.rate_limited == 0 and srv.stats.max_rate <= 3
        # the [mdat] search finds 4003 only; the watched PMIDs are fetched by one POST, and
        # 4002, left out, is asked for alone before it is marked deleted
        assert summary.found == 1 and summary.watched_requests == 2
        assert efetch_ids(srv) == ["4003", "4000,4001,4002", "4002"]
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "watched")).one()
            assert (run.pmids, run.status, run.new, run.updated, run.deleted) == (
                WATCHED, "completed", 1, 1, 1)
            seed = session.get(Record, 4000)
            assert seed is not None and seed.retracted is True  # stored now, from PubMed
            gone = session.get(Record, 4002)
            assert gone is not None and gone.deleted is True
            kept = session.get(Record, 4001)
            assert kept is not None and kept.decision == "include"
        assert alerts(ctx) == {("retraction", 4000, 4100): True, ("erratum", 4001, 4101): True,
                               ("deleted", 4002, None): True}

        # Next week, nothing new: one esearch and one efetch of the watched PMIDs, the deleted
        # one too (were its deletion a transient miss, this is where it heals), which is left
        # out again: still deleted, with no request alone and not counted as "not returned";
        # nothing stored twice, nothing re-alerted.
        srv.reset_stats()
        quiet = poll(ctx, modified=True, backoff_base=0.001)
        assert efetch_ids(srv) == ["4003", "4000,4001,4002"]
        assert (quiet.updated, quiet.new, quiet.deleted, quiet.deletion_checks,
                quiet.missing) == (0, 0, 0, 0, 0)
        assert len(alerts(ctx)) == 3
        ctx.dispose()


def test_notice_records_alert_about_the_report_they_correct(
        tmp_path: Path, db_url: str, pubmed_dir: Path) -> None:
    corpus = tmp_path / "notices"
    corpus.mkdir()
    for name in ("38833988.xml", "38962805.xml"):
        shutil.copy(pubmed_dir / "efetch_xml" / "metapub" / "pmid_xml" / name, corpus)
    shutil.copy(pubmed_dir / "bulk_baseline_update"
                / "pmparser_pubmed26n1334_baseline_sample.xml.gz", corpus)
    # 5000, included; 5100, a (synthetic) expression of concern about it, created later
    write_article_set(corpus / "synthetic.xml", [
        synthetic_article(5000, created=date(2024, 3, 1)),
        synthetic_article(5100, created=date(2025, 2, 3), title="Expression of concern "
                          "(synthetic)", publication_types=("Expression of Concern",),
                          comments=(("ExpressionOfConcernFor", 5000),)),
    ])
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        wipe(ctx)
        # Two trial reports never stored as records (e.g. seed reports): the originals of
        # the real erratum 38833988 and of the real retraction notice 41578200.
        set_reports(ctx, [33279609, 21595987])
        poll(ctx, pmids=[5000], backoff_base=0.001)
        include(ctx, 5000)

        # The create-date poll over the notices' days finds the notices (and the rest).
        summary = poll(ctx, since=date(2024, 6, 1), until=date(2026, 1, 31),
                       backoff_base=0.001)
        assert summary.new == 33  # 30 pmparser records, two errata, one concern
        got = alerts(ctx)
        # 38962805 corrects 38446048, which is neither stored nor in an analysis: no alert
        assert got == {("erratum", 33279609, 38833988): True,
                       ("retraction", 21595987, 41578200): True,
                       ("expression_of_concern", 5000, 5100): True}
        with ctx.sessions() as session:
            message = session.exec(select(Alert.message).where(Alert.pmid == 33279609)).one()
        assert message.startswith("PMID 33279609 has an erratum: notice PMID 38833988 "
                                  "(Corrigendum to \"MageC2 protein is upregulated")

        # Later NLM links the report back to its notice: the same alert, not a second one.
        write_article_set(corpus / "synthetic.xml", [
            synthetic_article(5000, created=date(2024, 3, 1), revised=_day(1),
                              comments=(("ExpressionOfConcernIn", 5100),)),
        ])
        srv.reload()
        again = poll(ctx, pmids=[5000], backoff_base=0.001)
        assert again.updated == 1
        assert alerts(ctx) == got
        with ctx.sessions() as session:
            assert len(session.exec(select(Alert).where(col(Alert.pmid) == 5000)).all()) == 1
        ctx.dispose()
