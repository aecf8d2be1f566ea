"""The PRISMA 2020 flow as a methodologist checks it: every box that is a sum of others equals
it on a realistic database (the demo corpus polled through the real monitor, screened by the
real classifier and by curators, full texts assessed for every reason, reports linked to new
and previous-version trials), and a PubMed record counts once however often it is fetched
(a revised version re-fetched by the monitor is neither a new record nor a duplicate).

The identities are written out here as arithmetic on the CSV's stage names, not only through
``reports.prisma.prisma_identities``, so a mistake in that function cannot hide one in the
counts."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select
from test_poll import SINCE, make_settings, write_scenario

from monitor.bootstrap import initialise
from monitor.demo import DEMO_POLL_START
from monitor.demo_corpus import read_labels, write_demo_corpus
from monitor.poll import poll
from monitor.replay_server import (
    ReplayServer,
    start_replay_server,
    synthetic_article,
    write_article_set,
)
from reports.exports import export
from reports.prisma import (
    ASSESSED_STAGE,
    AUTOMATION_STAGE,
    AWAITING_STAGE,
    BELOW_THRESHOLD_STAGE,
    CONFLICT_STAGE,
    CURATORS_STAGE,
    DELETED_STAGE,
    DUPLICATES_STAGE,
    ELIGIBLE_STAGE,
    ELIGIBLE_UNLINKED_STAGE,
    EXCLUDED_REASON_PREFIX,
    FULLTEXT_AWAITING_STAGE,
    FULLTEXT_EXCLUDED_STAGE,
    IDENTIFIED_STAGE,
    INCLUDED_STAGE,
    NEW_REPORTS_OF_PREVIOUS_STAGE,
    NEW_REPORTS_STAGE,
    NEW_TRIALS_STAGE,
    NOT_RETRIEVED_STAGE,
    PREVIOUS_REPORTS_STAGE,
    PREVIOUS_TRIALS_STAGE,
    REPORTS_STAGE,
    REVISED_STAGE,
    SCREENED_STAGE,
    TRIALS_STAGE,
    prisma_counts,
    prisma_identities,
)
from reports.prisma_diagram import prisma_svg
from screening.health import screening_health, screening_order, stopping_supported
from screening.queue import queue
from screening.service import screen
from screening.web.decisions import record_decision
from screening.web.queue_view import queue_counts
from store.context import AppContext, make_context
from store.fulltext import REASONS, assess, fulltext_counts
from store.models import (
    FullTextAssessment,
    PollRun,
    Record,
    RecordRevision,
    Trial,
    TrialReport,
    User,
)
from store.screening_pool import previous_report_pmids
from store.settings import parse_poll_start


def flow(session: Any, **kwargs: Any) -> dict[str, int]:
    return {stage: n for stage, n, _ in prisma_counts(session, **kwargs)}


def assert_flow_closes(n: dict[str, int]) -> None:
    """Each box equals the box above it minus what branches off, written out by hand."""
    reasons = {s: v for s, v in n.items() if s.startswith(EXCLUDED_REASON_PREFIX)}
    assert len(reasons) >= len(REASONS)  # every reason has its line, 0 or not
    # identification: removed before screening, awaiting a decision, then screened
    assert n[IDENTIFIED_STAGE] - n[DUPLICATES_STAGE] - n[AUTOMATION_STAGE] \
        - n[DELETED_STAGE] - n[AWAITING_STAGE] == n[SCREENED_STAGE]
    # screening: excluded by curators, (in conflict), or sought for retrieval
    assert n[SCREENED_STAGE] - n[CURATORS_STAGE] - n.get(CONFLICT_STAGE, 0) \
        == n[INCLUDED_STAGE]
    # full text: sought = not retrieved + awaiting assessment + assessed
    assert n[INCLUDED_STAGE] - n[NOT_RETRIEVED_STAGE] - n[FULLTEXT_AWAITING_STAGE] \
        == n[ASSESSED_STAGE]
    assert n[ASSESSED_STAGE] - n[FULLTEXT_EXCLUDED_STAGE] == n[ELIGIBLE_STAGE]
    assert sum(reasons.values()) == n[FULLTEXT_EXCLUDED_STAGE]
    # included: the previous version's plus the new ones
    assert n[PREVIOUS_TRIALS_STAGE] + n[NEW_TRIALS_STAGE] == n[TRIALS_STAGE]
    assert n[PREVIOUS_REPORTS_STAGE] + n[NEW_REPORTS_STAGE] == n[REPORTS_STAGE]
    # the notes are parts of one box, never subtracted
    assert 0 <= n[REVISED_STAGE] <= n[IDENTIFIED_STAGE]
    assert 0 <= n[BELOW_THRESHOLD_STAGE] <= n[AWAITING_STAGE]
    assert 0 <= n[NEW_REPORTS_OF_PREVIOUS_STAGE] <= n[NEW_REPORTS_STAGE]
    assert 0 <= n[ELIGIBLE_UNLINKED_STAGE] <= n[ELIGIBLE_STAGE]
    assert all(v >= 0 for v in n.values())
    # the function the page, the export and the diagram share agrees
    identities = prisma_identities([(s, v, "") for s, v in n.items()])
    assert len(identities) >= 7
    assert all(whole == parts for _, whole, parts in identities), identities


# ----------------------------------------------------------------------------- realistic
def build_review(ctx: AppContext, corpus: Path, server: ReplayServer) -> dict[str, Any]:
    """The demo corpus polled twice (the second search covers the first's window again) and by
    the modified pass, whose re-fetch of the trial reports stores two reports of the previous
    version (the seed evidence) as records; then screened as a team would: about half the
    records decided by label, the classifier trained and scoring the rest, full texts assessed
    with every verdict and reason, eligible reports linked to a new trial and to a trial of
    the previous version, and two records deleted from PubMed. Returns the facts the flow
    must agree with."""
    labels = read_labels(corpus)
    initialise(ctx)  # schema, the seed evidence (the previous version), the admin
    with ctx.sessions() as s:
        seed_pmids = sorted(previous_report_pmids(s))[:2]
    assert len(seed_pmids) == 2
    # PubMed has the seed reports, published long before the searches' window: only the
    # modified pass's re-fetch of the trial reports (monitor.poll.watched_pmids) stores them
    write_article_set(corpus / "seed-reports.xml", [
        synthetic_article(p, created=date(2012, 5, 10)) for p in seed_pmids])
    server.reload()
    poll(ctx, backoff_base=0.001)
    # The whole period searched again (a re-run search, as after a query change): every PMID
    # comes back a second time; then the modified pass.
    poll(ctx, since=parse_poll_start(DEMO_POLL_START), backoff_base=0.001)
    poll(ctx, modified=True, backoff_base=0.001)
    rng = random.Random(7)
    with ctx.sessions() as s:
        curator = User(email="curator@example.org", role="curator")
        s.add(curator)
        s.commit()
        pmids = sorted(s.exec(select(Record.pmid)).all())
        decided = sorted(rng.sample(pmids, len(pmids) // 2))
        for pmid in decided:
            label = labels.get(pmid)
            include = bool(label and label[1])
            decision = "include" if include else ("maybe" if rng.random() < 0.05
                                                  else "exclude")
            record_decision(s, user=curator, pmid=pmid, decision=decision)
        s.commit()
    with ctx.sessions() as s:
        # a curator includes a seed report found again: it is still a duplicate of the
        # previous version's report, whatever was decided on it; a full-text verdict on it
        # (stored as before the rule: it is refused now, the report is not sought again)
        # counts nowhere either
        curator = s.exec(select(User).where(User.email == "curator@example.org")).one()
        record_decision(s, user=curator, pmid=seed_pmids[0], decision="include")
        s.add(FullTextAssessment(pmid=seed_pmids[0], user_id=curator.id, kind="verdict",
                                 verdict="eligible"))
        s.commit()
    screen(ctx)  # trains on the decisions, scores and flags the rest
    with ctx.sessions() as s:
        curator = s.exec(select(User).where(User.email == "curator@example.org")).one()
        passed = sorted(p for p in s.exec(select(Record.pmid).where(
            col(Record.decision).in_(("include", "maybe")))).all() if p not in seed_pmids)
        assert len(passed) >= 10, passed
        verdicts = ["eligible", "not_retrieved", *(("excluded", c) for c in REASONS)]
        assessed: dict[int, Any] = {}
        for i, pmid in enumerate(passed[:-2]):  # the last two await their assessment
            v = verdicts[i % len(verdicts)]
            verdict, reason = (v, None) if isinstance(v, str) else v
            assess(s, user=curator, pmid=pmid, verdict=verdict, reason=reason,
                   note="a single-arm study" if reason == "other" else None,
                   screeners_per_record=1)
            assessed[pmid] = verdict
        eligible = [p for p, v in assessed.items() if v == "eligible"]
        assert len(eligible) >= 2
        new = Trial(name="NEW-MAINT 1", drug="ixazomib", setting="post_asct")
        s.add(new)
        s.flush()
        seed_trial = s.exec(select(Trial).where(Trial.id != new.id).order_by(Trial.id)).first()
        assert seed_trial is not None
        s.add(TrialReport(trial_id=new.id, pmid=eligible[0], citation="new trial report"))
        s.add(TrialReport(trial_id=seed_trial.id, pmid=eligible[1],
                          citation="later report of a previous trial", kind="update"))
        # PubMed deleted two records: one nobody decided on, one a curator had excluded
        ours = col(Record.pmid).not_in(seed_pmids)
        undecided = s.exec(select(Record).where(col(Record.decision).is_(None), ours)
                           .order_by(Record.pmid)).first()
        excluded = s.exec(select(Record).where(Record.decision == "exclude", ours)
                          .order_by(Record.pmid)).first()
        for gone in (undecided, excluded):
            assert gone is not None
            gone.deleted = True
            s.add(gone)
        s.commit()
        hits = sum(r.found for r in s.exec(select(PollRun)))
        distinct = int(s.exec(select(func.count()).select_from(Record)).one())
        stored_seed = len(s.exec(select(Record.pmid).where(
            col(Record.pmid).in_(seed_pmids))).all())
    assert stored_seed == 2  # the watched re-fetch stored them
    return {"hits": hits, "distinct": distinct, "deleted": 2, "seed_records": stored_seed}


@pytest.fixture
def review(tmp_path: Path, db_url: str) -> Any:
    corpus = tmp_path / "demo-corpus"
    write_demo_corpus(corpus)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url,
                                         poll_start=DEMO_POLL_START, recheck_days=30,
                                         admin_password="first-login-passphrase-for-tests"))
        try:
            facts = build_review(ctx, corpus, srv)
            yield ctx, facts
        finally:
            ctx.dispose()


def test_the_flow_closes_on_a_realistic_review(review: Any, tmp_path: Path) -> None:
    ctx, facts = review
    with ctx.sessions() as s:
        stops = stopping_supported(s)
        flows = {(dual, auto): flow(s, dual=dual, automation_stops=auto)
                 for dual in (False, True) for auto in (False, True)}
    for key, n in flows.items():
        assert_flow_closes(n)
        # each PMID once, though the searches returned many of them more than once
        assert n[IDENTIFIED_STAGE] == facts["distinct"], key
        # the previous version's reports found again are the duplicates, out of the flow
        assert n[DUPLICATES_STAGE] == facts["seed_records"] == 2, key
        assert n[DELETED_STAGE] == facts["deleted"], key
    n = flows[(False, stops)]
    # the second search found every record of the searches again (the two seed reports came
    # from the re-fetch of the trial reports, which searches nothing)
    assert facts["hits"] >= 2 * (facts["distinct"] - facts["seed_records"])
    assert n[INCLUDED_STAGE] >= 10 and n[ASSESSED_STAGE] > 0 and n[NOT_RETRIEVED_STAGE] > 0
    assert all(n[f"{EXCLUDED_REASON_PREFIX}{r}"] > 0 for r in (
        "not a randomised trial", "other reasons"))
    assert n[FULLTEXT_AWAITING_STAGE] == 2
    assert n[NEW_TRIALS_STAGE] == 1 and n[NEW_REPORTS_STAGE] == 2
    assert n[NEW_REPORTS_OF_PREVIOUS_STAGE] == 1
    # two eligible reports were linked to trials: the others are not reports of included
    # studies yet, and the flow says how many
    assert n[ELIGIBLE_UNLINKED_STAGE] == n[ELIGIBLE_STAGE] - 2
    below = flows[(False, False)][BELOW_THRESHOLD_STAGE]
    assert below > 0  # the classifier scored records below its flag threshold
    # the stopping rule decides only where those records go: awaiting or not screened
    assert flows[(False, True)][AUTOMATION_STAGE] == below
    assert flows[(False, True)][AWAITING_STAGE] == flows[(False, False)][AWAITING_STAGE] - below
    # and never what a person screened
    assert flows[(False, True)][SCREENED_STAGE] == flows[(False, False)][SCREENED_STAGE]
    with ctx.sessions() as s:
        decided = int(s.exec(select(func.count()).select_from(Record).where(
            col(Record.deleted).is_(False), col(Record.decision).is_not(None),
            col(Record.pmid).not_in(sorted(previous_report_pmids(s))))).one())
    # (the seed report a curator included is a duplicate: not among the records screened)
    assert flows[(False, False)][SCREENED_STAGE] == decided
    # The queue, its counts, the screening health and the stopping test count the flow's
    # records: the previous version's reports are out of every one of them, as here.
    with ctx.sessions() as s:
        health = screening_health(s)
        counts = queue_counts(s)
        listed = {i.pmid for i in queue(s, limit=100_000)}
        order = screening_order(s)
        previous = previous_report_pmids(s)
    plain = flows[(False, False)]
    assert health["screened"] == len(order.labels) == plain[SCREENED_STAGE]
    assert health["records_remaining"] == counts["undecided"] == order.unscreened \
        == len(listed) == plain[AWAITING_STAGE]
    assert health["records"] == counts["records"] == plain[IDENTIFIED_STAGE] \
        - plain[DUPLICATES_STAGE] - plain[DELETED_STAGE]
    assert counts["previous_reports"] == plain[DUPLICATES_STAGE] == 2
    assert not listed & previous
    # and so does the full-text stage (its page, API and digest): the seed report a curator
    # included, with its old verdict, is not sought again
    with ctx.sessions() as s:
        stage = fulltext_counts(s)
    assert (stage.sought, stage.assessed, stage.eligible, stage.awaiting) == (
        plain[INCLUDED_STAGE], plain[ASSESSED_STAGE], plain[ELIGIBLE_STAGE],
        plain[FULLTEXT_AWAITING_STAGE])
    # the CSV, the Markdown and the diagram are drawn from the same counts
    written = export(ctx, "prisma", tmp_path / "out.csv", stopping=stopping_supported)
    csv_text = written[0].read_text(encoding="utf-8")
    for stage, value in n.items():
        assert f"{stage},{value}," in csv_text or f'"{stage}",{value},' in csv_text, stage
    with ctx.sessions() as s:
        drawn = prisma_svg(prisma_counts(s, automation_stops=stops))
    assert written[2].read_text(encoding="utf-8") == drawn


# ----------------------------------------------------------------------------- revisions
def test_a_revised_record_refetched_is_neither_identified_again_nor_a_duplicate(
        tmp_path: Path, db_url: str) -> None:
    """PubMed revises records after mmlr stored them (MEDLINE indexing, a retraction): the
    monitor fetches the new version and keeps the old one as a revision. The record is still
    one record: identified once, no duplicate, records screened unchanged; the revision is
    the note's count. A later search that returns the held PMIDs again adds only the PMIDs
    new to the review."""
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        try:
            poll(ctx, backoff_base=0.001)
            with ctx.sessions() as s:
                first = flow(s)
                stored = set(s.exec(select(Record.pmid)).all())
            assert first[IDENTIFIED_STAGE] == len(stored) > 0
            assert first[DUPLICATES_STAGE] == 0 and first[REVISED_STAGE] == 0

            write_scenario(corpus, 2)  # 1100, 1101 and 1103 revised; 1102, 1200 new
            srv.reload()
            poll(ctx, pmids=[1100, 1101, 1103], backoff_base=0.001)
            with ctx.sessions() as s:
                refetched = flow(s)
                versions = int(s.exec(select(func.count()).select_from(RecordRevision)).one())
            assert versions == 3  # the monitor kept the three earlier versions
            assert refetched[IDENTIFIED_STAGE] == first[IDENTIFIED_STAGE]
            assert refetched[DUPLICATES_STAGE] == 0
            assert refetched[SCREENED_STAGE] == first[SCREENED_STAGE]
            assert refetched[REVISED_STAGE] == 3
            assert_flow_closes(refetched)

            # a create-date search of the whole period again: the held PMIDs come back with
            # the new ones, and only the new ones are new records
            poll(ctx, since=SINCE, backoff_base=0.001)
            with ctx.sessions() as s:
                after = flow(s)
                now_stored = set(s.exec(select(Record.pmid)).all())
                found = sum(r.found for r in s.exec(select(PollRun).where(
                    PollRun.kind == "crdt")))
            assert now_stored - stored == {1102, 1200}
            assert after[IDENTIFIED_STAGE] == first[IDENTIFIED_STAGE] + 2
            assert found > after[IDENTIFIED_STAGE]  # PMIDs returned by both searches
            assert after[DUPLICATES_STAGE] == 0
            assert after[DELETED_STAGE] == 1  # 1005, deleted in version 2
            assert after[REVISED_STAGE] >= 3
            assert_flow_closes(after)
        finally:
            ctx.dispose()


def test_a_trial_without_a_report_is_not_an_included_study(ctx: AppContext) -> None:
    # A trial created on /trials/new before its paper is linked: PRISMA includes studies
    # through their reports, so it waits outside the box until one is linked.
    with ctx.sessions() as s:
        waiting = Trial(name="Paper to come", drug="lenalidomide", setting="post_asct")
        reported = Trial(name="Reported", drug="lenalidomide", setting="post_asct")
        s.add_all([waiting, reported])
        s.flush()
        # (reports screened here and found eligible at full text: those the box counts)
        for pmid in (101, 102):
            s.add(Record(pmid=pmid, title=f"report {pmid}", decision="include"))
            s.add(FullTextAssessment(pmid=pmid, kind="verdict", verdict="eligible"))
        s.add(TrialReport(trial_id=reported.id, pmid=101, citation="Doe J. Blood 2024",
                          year=2024))
        s.commit()
        n = flow(s)
        assert (n[TRIALS_STAGE], n[NEW_TRIALS_STAGE], n[REPORTS_STAGE]) == (1, 1, 1)
        s.add(TrialReport(trial_id=waiting.id, pmid=102, citation="Roe R. Lancet 2025",
                          year=2025))
        s.commit()
        assert flow(s)[TRIALS_STAGE] == 2
