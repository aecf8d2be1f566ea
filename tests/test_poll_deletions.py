"""Records NLM deletes, as real E-utilities shows them: left out of efetch answers.

Real efetch sends no ``DeleteCitation`` (that element only exists in NLM's FTP update files):
a deleted PMID is simply absent from a multi-PMID answer, and a request for it alone gets an
empty ``PubmedArticleSet`` (ENTREZ.md §0.5, §2.2). The replay server serves exactly that for
PMIDs given to ``set_removed`` (its empty answer is the real recorded one), and its ``omit``
fault leaves a record out of one answer the way a transiently incomplete answer would. A
stored PMID left out is marked deleted only when asked for alone it comes back empty.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, cli_env
from sqlmodel import col, select
from test_poll import TODAY, make_settings, wipe

from monitor.poll import LEFT_OUT_RETRY_DAYS, _left_out_pmids, poll
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from store.context import AppContext, make_context
from store.errors import EntrezError
from store.models import Alert, Decision, PollRun, Record, RecordRevision

# Young records not yet MEDLINE-indexed (so the recheck pass fetches them again): 1101 is a
# trial report's PMID (see test_poll.wipe), 1102 is the one a curator includes.
PMIDS = [1100, 1101, 1102]


def write_corpus(dest: Path, *, indexed: bool = False) -> None:
    """Three Publisher records created yesterday; ``indexed``: 1102 is now MEDLINE-indexed (a
    later version)."""
    created = TODAY - timedelta(days=1)
    arts = [synthetic_article(p, created=created, status="Publisher") for p in PMIDS[:2]]
    arts.append(synthetic_article(
        1102, created=created, status="MEDLINE" if indexed else "Publisher",
        mesh=("Multiple Myeloma",) if indexed else (),
        title="Lenalidomide maintenance after ASCT (synthetic)"))
    write_article_set(dest / "records.xml", arts)


def setup_stored(ctx: AppContext) -> None:
    """Poll once (all three stored), then a curator includes 1102."""
    wipe(ctx)
    poll(ctx, backoff_base=0.001)
    with ctx.sessions() as session:
        rec = session.get(Record, 1102)
        assert rec is not None and rec.deleted is False
        rec.decision = "include"
        session.add(rec)
        session.add(Decision(pmid=1102, decision="include"))
        session.commit()


def efetch_ids(srv: Any) -> list[str]:
    """The ``id`` parameter of every efetch the server received, in order."""
    return [p["id"][0] for p in srv.stats.params if "id" in p and "term" not in p]


def state(ctx: AppContext) -> dict[int, tuple[bool, str | None, str | None]]:
    with ctx.sessions() as session:
        return {r.pmid: (r.deleted, r.decision, r.status) for r in session.exec(select(Record))}


def alerts(ctx: AppContext) -> dict[tuple[str, int, int | None], bool]:
    with ctx.sessions() as session:
        return {(a.kind, a.pmid, a.related_pmid): a.in_analysis
                for a in session.exec(select(Alert))}


def test_left_out_and_confirmed_is_deleted_with_alerts_and_decisions_kept(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        setup_stored(ctx)
        # NLM deletes the trial report's record and the included one: E-utilities stops
        # finding them and leaves them out of efetch answers.
        srv.set_removed({1101, 1102})
        srv.reset_stats()
        with caplog.at_level(logging.INFO, logger="monitor.poll"):
            summary = poll(ctx, backoff_base=0.001)
        # crdt: the search finds 1100 only; the recheck of the young stored records asks for
        # 1101 and 1102, gets neither, and asks for each alone: both empty, so both deleted.
        assert (summary.deleted, summary.deletion_checks, summary.missing) == (2, 2, 0)
        assert efetch_ids(srv) == ["1100", "1101,1102", "1101", "1102"]
        assert state(ctx) == {1100: (False, None, "Publisher"),
                              1101: (True, None, "Publisher"),
                              1102: (True, "include", "Publisher")}
        with ctx.sessions() as session:
            assert len(session.exec(select(Decision)).all()) == 1  # curator work kept
            recheck = session.exec(select(PollRun).where(PollRun.kind == "recheck")).one()
            assert (recheck.status, recheck.deleted, recheck.missing) == ("completed", 2, [])
            # when: for the PRISMA page's "since the last digest"
            dated = {r.pmid: r.deleted_at for r in session.exec(select(Record))}
            assert dated[1100] is None and dated[1101] == dated[1102] is not None
            assert recheck.started_at <= dated[1101] <= (recheck.finished_at or dated[1101])
        # the same alerts as the DeleteCitation path: both records are in use
        assert alerts(ctx) == {("deleted", 1101, None): True, ("deleted", 1102, None): True}
        logged = [r.getMessage() for r in caplog.records]
        assert any("PMID 1102 is no longer in PubMed" in m for m in logged), logged
        assert "2 left-out stored PMID(s) asked for again" in summary.describe()

        # Deleted records are not rechecked, and asking for one explicitly costs no second
        # request: it is already deleted, and stays so (not "not returned"). A PMID never
        # stored is only counted, as before.
        srv.reset_stats()
        again = poll(ctx, pmids=[1102, 99999], backoff_base=0.001)
        assert (again.deletion_checks, again.missing, again.deleted) == (0, 1, 0)
        assert efetch_ids(srv) == ["1102,99999"]
        assert len(alerts(ctx)) == 2

        # PubMed serves 1101 again: no longer deleted, and no deletion date
        srv.set_removed({1102})
        poll(ctx, pmids=[1101], backoff_base=0.001)
        with ctx.sessions() as session:
            back = session.get(Record, 1101)
            assert back is not None and (back.deleted, back.deleted_at) == (False, None)
        ctx.dispose()


def test_left_out_once_but_served_alone_is_not_deleted(tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        setup_stored(ctx)
        write_corpus(corpus, indexed=True)
        srv.reload()
        # Request 1 is the crdt esearch, 2 the efetch of 1100-1102: its answer leaves out its
        # last record, 1102 (well-formed, just incomplete).
        srv.set_faults("omit@2")
        srv.reset_stats()
        summary = poll(ctx, backoff_base=0.001)
        assert srv.stats.faults == {"omit": 1}
        assert efetch_ids(srv) == ["1100,1101,1102", "1102"]
        assert (summary.deleted, summary.deletion_checks, summary.missing) == (0, 1, 0)
        # the answer to the second request is stored like any other: 1102's new version
        assert state(ctx)[1102] == (False, "include", "MEDLINE")
        with ctx.sessions() as session:
            rev = session.exec(select(RecordRevision).where(RecordRevision.pmid == 1102)).one()
            assert rev.status == "Publisher"
            run = session.exec(select(PollRun).where(PollRun.kind == "crdt")
                               .order_by(col(PollRun.id).desc())).first()
            assert run is not None and (run.missing, run.updated, run.fetched) == ([], 1, 3)
        assert alerts(ctx) == {}
        ctx.dispose()


def test_a_new_pmid_left_out_of_an_answer_is_asked_for_by_the_next_poll(
        tmp_path: Path, db_url: str) -> None:
    """A PMID never stored costs no request when an answer leaves it out, but it is not lost:
    the next create-date poll asks for it again even when its create date has left the
    search window (here: a window that no longer contains it)."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        wipe(ctx)
        # Request 1 is the esearch, 2 the efetch of 1100-1102, whose answer leaves out 1102.
        srv.set_faults("omit@2")
        first = poll(ctx, backoff_base=0.001)
        assert (first.missing, first.new) == (1, 2) and 1102 not in state(ctx)
        assert "1 PMID not returned (asked again by the next polls)" in first.describe()
        srv.set_faults(None)
        srv.reset_stats()
        # A window after the records' create date: the search finds nothing, yet 1102 is asked.
        later = poll(ctx, since=TODAY, backoff_base=0.001)
        assert "1102" in ",".join(efetch_ids(srv))
        assert later.new == 1 and state(ctx)[1102] == (False, None, "Publisher")
        # stored now: no longer asked for as left out (the recheck pass may fetch it, as any
        # record not yet MEDLINE-indexed)
        assert _left_out_pmids(ctx) == set()
        ctx.dispose()


def test_a_new_pmid_left_out_is_asked_for_again_even_with_recheck_days_zero(
        tmp_path: Path, db_url: str) -> None:
    """MMLR_RECHECK_DAYS=0 turns off the recheck of records awaiting MEDLINE indexing; it also
    made the retry window of a left-out PMID zero days long, so a record left out of one
    answer was lost for good while the summary said "asked again by the next polls"."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url, recheck_days=0))
        wipe(ctx)
        # Request 1 is the esearch, 2 the efetch of 1100-1102, whose answer leaves out 1102.
        srv.set_faults("omit@2")
        first = poll(ctx, backoff_base=0.001)
        assert (first.missing, first.new) == (1, 2) and 1102 not in state(ctx)
        assert "1 PMID not returned (asked again by the next polls)" in first.describe()
        assert _left_out_pmids(ctx) == {1102}
        srv.set_faults(None)
        srv.reset_stats()
        later = poll(ctx, since=TODAY, backoff_base=0.001)  # a window without 1102
        assert "1102" in ",".join(efetch_ids(srv))
        assert later.new == 1 and state(ctx)[1102] == (False, None, "Publisher")
        assert _left_out_pmids(ctx) == set()
        ctx.dispose()


def test_failed_confirmation_deletes_nothing_and_the_next_poll_asks_again(
        tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None, retry_after=0) as srv:
        settings = make_settings(tmp_path, db_url, srv.url, entrez_retry_budget=2)
        ctx = make_context(settings)
        setup_stored(ctx)
        before = state(ctx)
        srv.set_removed({1102})
        # Request 1 is the batch efetch (1102 left out); 2-4 the request asking for 1102
        # alone and its two retries, which spend the run's retry budget of 2.
        srv.set_faults("500@2,500@3,500@4")
        with pytest.raises(EntrezError) as caught:
            poll(ctx, pmids=PMIDS, backoff_base=0.001)
        message = caught.value.one_line()
        assert message.startswith("PMID 1102 was left out of an efetch answer and the request "
                                  "that would confirm its deletion failed: E-utilities retry "
                                  "budget of 2 retries")
        assert "nothing was marked deleted" in message
        assert srv.stats.faults == {"500": 3}
        # nothing deleted, nothing alerted, curator work untouched; the batch is not stored
        # (it is fetched again, whole, by the resumed run)
        assert state(ctx) == before
        assert alerts(ctx) == {}
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "pmids")).one()
            assert (run.status, run.batches_done, run.deleted) == ("interrupted", 0, 0)
            assert run.error is not None and "nothing was marked deleted" in run.error
            assert len(session.exec(select(Decision)).all()) == 1

        # NCBI recovers: the next poll resumes the run, asks again, and deletes 1102.
        srv.set_faults(None)
        summary = poll(ctx, backoff_base=0.001)
        assert summary.resumed == 1 and summary.deletion_checks == 1
        assert state(ctx)[1102] == (True, "include", "Publisher")
        assert alerts(ctx) == {("deleted", 1102, None): True}
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.kind == "pmids")).one()
            assert (run.status, run.batches_done, run.deleted, run.missing) == (
                "completed", 1, 1, [])
        ctx.dispose()


def test_failed_confirmation_is_one_line_on_the_cli(tmp_path: Path, db_url: str) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None, retry_after=0) as srv:
        settings = make_settings(tmp_path, db_url, srv.url)
        ctx = make_context(settings)
        setup_stored(ctx)
        ctx.dispose()
        srv.set_removed({1102})
        srv.set_faults("503@2,503@3")
        pmid_file = tmp_path / "pmids.txt"
        pmid_file.write_text("1100\n1102\n")
        env = cli_env(MMLR_DATABASE_URL=settings.db_url, MMLR_DATA_DIR=str(tmp_path / "cli"),
                      MMLR_ENTREZ_URL=srv.url, MMLR_ENTREZ_RATE="500",
                      MMLR_ENTREZ_EMAIL="tests@example.org", MMLR_ENTREZ_MAX_RETRIES="1")
        proc = subprocess.run(
            [sys.executable, "-c", "from monitor.cli import entrypoint; entrypoint()", "poll",
             "--pmids", str(pmid_file)], env=env, cwd=ROOT, text=True, capture_output=True,
            timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mmlr: error: PMID 1102 was left out of an efetch answer and "
                               "the request that would confirm its deletion failed: "
                               "E-utilities efetch failed after 2 attempts: HTTP 503")
    assert "nothing was marked deleted" in lines[0] and "Traceback" not in proc.stderr


def test_a_new_pmid_left_out_of_a_modified_pass_is_asked_for_by_the_next_poll(
        tmp_path: Path, db_url: str) -> None:
    """The summary of every kind of run says a PMID not returned is "asked again by the next
    polls": one the modified pass found, never stored, was never asked for again."""
    from test_poll import mod_settings, modified_setup, write_modified_scenario

    corpus = tmp_path / "mod"
    write_modified_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(mod_settings(tmp_path, db_url, srv.url))
        modified_setup(ctx)
        write_modified_scenario(corpus, 2)  # 2050, new to us, modified yesterday
        srv.reload()
        # Request 1 is the [mdat] esearch, 2 the efetch of 2000, 2001, 2003 and 2050, whose
        # answer leaves out its last record: 2050, never stored (no deletion check).
        srv.set_faults("omit@2")
        modified = poll(ctx, modified=True, backoff_base=0.001)
        assert modified.missing == 1 and modified.deletion_checks == 0
        assert "1 PMID not returned (asked again by the next polls)" in modified.describe()
        assert _left_out_pmids(ctx) == {2050}
        srv.set_faults(None)
        srv.reset_stats()
        # The create-date poll's window does not hold 2050 (created two months ago)...
        later = poll(ctx, backoff_base=0.001)
        assert "2050" in ",".join(efetch_ids(srv))  # ...yet it asks for it
        assert later.new == 1 and 2050 in state(ctx)
        assert _left_out_pmids(ctx) == set()
        ctx.dispose()


def test_a_pmid_never_served_is_asked_for_a_month_from_the_first_miss(
        tmp_path: Path, db_url: str) -> None:
    """Each poll that asks again and is left out again lists the PMID in its own run's
    ``missing``: that restarted the window, so a PMID PubMed never serves was asked forever."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))  # recheck_days 120
        wipe(ctx)
        poll(ctx, pmids=[99999], backoff_base=0.001)  # PubMed has no such record
        again = poll(ctx, backoff_base=0.001)  # asks for it again, is left out again
        assert again.missing == 1
        with ctx.sessions() as session:
            runs = {r.kind: r for r in session.exec(select(PollRun).where(
                col(PollRun.kind).in_(("pmids", "crdt"))))}
            assert runs["pmids"].missing == runs["crdt"].missing == [99999]
            # As if the first miss was 31 days ago, and the poll that asked again 10: the
            # window is LEFT_OUT_RETRY_DAYS (30), not MMLR_RECHECK_DAYS (120).
            now = runs["crdt"].started_at
            runs["pmids"].started_at = now - timedelta(days=LEFT_OUT_RETRY_DAYS + 1)
            runs["crdt"].started_at = now - timedelta(days=10)
            session.add_all(runs.values())
            session.commit()
        assert _left_out_pmids(ctx) == set()
        srv.reset_stats()
        poll(ctx, backoff_base=0.001)
        assert "99999" not in ",".join(efetch_ids(srv))
        ctx.dispose()


def test_an_included_record_deleted_by_two_transient_misses_heals_in_the_watched_pass(
        tmp_path: Path, db_url: str) -> None:
    """Left out of the watched batch, then out of the answer for it alone (a transiently
    incomplete answer, twice): marked deleted. The watched pass left deleted records out, and
    no other pass fetched it again: deleted for good. It asks for them now."""
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        setup_stored(ctx)  # 1101 a trial report's, 1102 included
        srv.set_outside_query(PMIDS)  # only the watched re-fetch asks for them
        # Request 1 is the [mdat] esearch, 2 the watched efetch of 1101 and 1102 (1102, last,
        # left out), 3 the request for 1102 alone (left out too: the empty answer).
        srv.set_faults("omit@2,omit@3")
        poll(ctx, modified=True, backoff_base=0.001)
        assert state(ctx)[1102] == (True, "include", "Publisher")
        srv.set_faults(None)
        srv.reset_stats()
        healed = poll(ctx, modified=True, backoff_base=0.001)
        assert efetch_ids(srv) == ["1101,1102"]
        assert state(ctx)[1102] == (False, "include", "Publisher")
        assert (healed.deleted, healed.missing) == (0, 0)

        # A real deletion stays deleted, week after week, at no extra request.
        srv.set_removed({1102})
        poll(ctx, modified=True, backoff_base=0.001)
        assert state(ctx)[1102][0] is True
        srv.reset_stats()
        later = poll(ctx, modified=True, backoff_base=0.001)
        assert efetch_ids(srv) == ["1101,1102"]
        assert (later.deleted, later.deletion_checks, later.missing) == (0, 0, 0)
        assert state(ctx)[1102] == (True, "include", "Publisher")
        ctx.dispose()


def test_a_whole_batch_answered_empty_twice_is_an_ncbi_fault_not_deletions(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """An efetch answer with none of a batch's records, and each of them empty again when
    asked for alone, marked every stored record of the batch deleted, unchecked. NLM deletes
    a few records a year: that many at once is a fault, and the next poll asks again."""
    from monitor.poll import MASS_DELETION

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pmids = list(range(5000, 5000 + MASS_DELETION))
    write_article_set(corpus / "records.xml", [
        synthetic_article(p, created=TODAY - timedelta(days=10)) for p in pmids])
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url,
                                         entrez_batch_size=MASS_DELETION))
        wipe(ctx)
        poll(ctx, pmids=pmids, backoff_base=0.001)
        assert sorted(state(ctx)) == pmids
        # Request 1 is the batch, 2 to MASS_DELETION + 1 each PMID alone: all answered with
        # the empty PubmedArticleSet of PMIDs PubMed has no record of.
        srv.set_faults(",".join(f"empty@{n}" for n in range(1, MASS_DELETION + 2)))
        srv.reset_stats()
        with caplog.at_level(logging.ERROR, logger="monitor.poll"), \
                pytest.raises(EntrezError) as caught:
            poll(ctx, pmids=pmids, backoff_base=0.001)
        assert srv.stats.faults == {"empty": MASS_DELETION + 1}
        with ctx.sessions() as session:
            run_id = session.exec(select(PollRun.id).where(PollRun.kind == "pmids")
                                  .order_by(col(PollRun.id).desc())).first()
        line = caught.value.one_line()
        assert line.startswith(
            f"efetch returned none of the {MASS_DELETION} PMIDs of batch 1 of poll run {run_id}, "
            "and "
            f"each of the {MASS_DELETION} stored ones came back empty when asked for alone: "
            f"taken for an E-utilities fault, not {MASS_DELETION} deletions"), line
        assert "nothing was marked deleted; the next poll resumes this batch" in line
        assert "taken for an E-utilities fault" in caplog.text
        assert not any(deleted for deleted, _, _ in state(ctx).values())
        assert alerts(ctx) == {}
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.id == run_id)).one()
            assert (run.status, run.batches_done, run.deleted) == ("interrupted", 0, 0)
        # NCBI recovers: the next poll resumes the batch, and every record is still there.
        srv.set_faults(None)
        summary = poll(ctx, backoff_base=0.001)
        assert summary.resumed == 1 and summary.deleted == 0
        assert not any(deleted for deleted, _, _ in state(ctx).values())
        with ctx.sessions() as session:
            run = session.exec(select(PollRun).where(PollRun.id == run_id)).one()
            assert (run.status, run.unchanged, run.deleted) == ("completed", MASS_DELETION, 0)
        ctx.dispose()
