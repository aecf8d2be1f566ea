"""PRISMA 2020's "identification via other methods": the records a curator added by PMID
(the /fetch page and ``mmlr poll --pmids``, against real E-utilities replay servers) get a
column of their own in the flow, the diagram, the page, the export and the API; a PMID keeps
the route that first identified it; migration 0016 back-fills the route from the poll runs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import table_without
from migration_steps import alembic_config
from sqlalchemy import text
from sqlmodel import col, select
from test_poll import SINCE, TODAY, make_settings, write_scenario
from test_prisma_diagram import box_of, boxes, parse
from test_web import as_role, db
from test_web_fetch import REAL, _post, served  # noqa: F401  (served: the fixture)

from monitor.poll import poll
from monitor.replay_server import start_replay_server, synthetic_article, write_article_set
from reports.exports import export
from reports.prisma import (
    ASSESSED_STAGE,
    CURATORS_STAGE,
    DELETED_STAGE,
    DUPLICATES_STAGE,
    ELIGIBLE_STAGE,
    IDENTIFIED_STAGE,
    INCLUDED_STAGE,
    OTHER_IDENTIFIED_STAGE,
    OTHER_PREFIX,
    REPORTS_STAGE,
    SCREENED_STAGE,
    TRIALS_STAGE,
    other_stage,
    prisma_counts,
    prisma_identities,
)
from reports.prisma_diagram import prisma_svg
from screening.web.decisions import record_decision
from store.context import make_context
from store.fulltext import assess
from store.models import PollRun, Record, User, utcnow

#: The boxes of one identification column (named as in the databases column).
COLUMN = (IDENTIFIED_STAGE, DUPLICATES_STAGE, DELETED_STAGE, SCREENED_STAGE, CURATORS_STAGE,
          INCLUDED_STAGE, ASSESSED_STAGE, ELIGIBLE_STAGE)


def flow(session: Any) -> dict[str, int]:
    return {stage: n for stage, n, _ in prisma_counts(session)}


def assert_both_columns_close(n: dict[str, int]) -> None:
    """Each column's boxes add up on their own, written out by hand for the other-methods
    column, and ``prisma_identities`` (what the page, export and API share) agrees."""
    def o(stage: str) -> int:
        return n[other_stage(stage)]

    assert o(IDENTIFIED_STAGE) - o(DUPLICATES_STAGE) - o(
        "records not screened (screening stopped by the stopping rule)") - o(DELETED_STAGE) \
        - o("records awaiting screening") == o(SCREENED_STAGE)
    assert o(SCREENED_STAGE) - o(CURATORS_STAGE) == o(INCLUDED_STAGE)
    assert o(INCLUDED_STAGE) - o("reports not retrieved") \
        - o("reports awaiting full-text assessment") == o(ASSESSED_STAGE)
    identities = prisma_identities([(s, v, "") for s, v in n.items()])
    others = [i for i in identities if i[0].startswith(OTHER_PREFIX)]
    assert len(others) == 5 and len(identities) == 12, identities
    assert all(whole == parts for _, whole, parts in identities), identities


# ----------------------------------------------------------------------------- /fetch
def test_records_fetched_by_pmid_on_the_fetch_page_are_identified_via_other_methods(
        served: tuple[Any, dict[str, str]]) -> None:  # noqa: F811
    app, users = served
    curator = as_role(app, users, "curator")
    assert _post(curator, f"{REAL[0]} {REAL[1]}").status_code == 303
    app.state.fetcher.join(timeout=30)
    with db(app) as s:
        assert {r.pmid: r.identified_via for r in s.exec(select(Record))} == {
            REAL[0]: "pmid", REAL[1]: "pmid"}
        n = flow(s)
        user = s.exec(select(User).where(User.email == users["curator"])).one()
        record_decision(s, user=user, pmid=REAL[0], decision="include")
        record_decision(s, user=user, pmid=REAL[1], decision="exclude")
        s.commit()
        decided = flow(s)
    # the databases column has none of them; the other-methods column has both, once
    assert n[IDENTIFIED_STAGE] == 0 and n[SCREENED_STAGE] == 0
    assert n[OTHER_IDENTIFIED_STAGE] == 2 and n[other_stage("records awaiting screening")] == 2
    assert decided[other_stage(SCREENED_STAGE)] == 2
    assert decided[other_stage(CURATORS_STAGE)] == 1
    assert decided[other_stage(INCLUDED_STAGE)] == 1  # sought for retrieval
    assert decided[IDENTIFIED_STAGE] == decided[INCLUDED_STAGE] == 0
    assert_both_columns_close(decided)

    # the page says so and draws the column; the API and the records carry it
    page = curator.get("/prisma").text
    assert 'id="other-methods"' in page and "Curators added 2 records by PMID" in page
    assert f'<tr data-stage="{OTHER_IDENTIFIED_STAGE}">' in page
    svg = curator.get("/prisma.svg").text
    shown = boxes(svg)
    assert "Identification of studies via other methods" in svg
    assert "Records added by PMID by curators" in shown["other-identified"]
    assert "n = 2" in shown["other-identified"] and "n = 1" in shown["other-excluded"]
    assert 'class="arrow join"' in svg  # into the included box both columns share
    desc = parse(svg).find("{http://www.w3.org/2000/svg}desc")
    assert desc is not None and ("Identification via other methods: 2 records added by PMID "
                                 "by curators") in (desc.text or "")
    api = curator.get("/api/prisma").json()
    stages = {row["stage"]: row["count"] for row in api["stages"]}
    assert stages == decided
    assert all(i["count"] == i["parts"] for i in api["identities"])
    assert any(i["sum"].startswith(OTHER_IDENTIFIED_STAGE) for i in api["identities"])
    listed = curator.get("/api/records").json()["records"]
    assert {r["pmid"]: r["identified_via"] for r in listed} == {REAL[0]: "pmid",
                                                                REAL[1]: "pmid"}


# ----------------------------------------------------------------------------- poll
def test_a_pmid_added_by_pmid_and_later_found_by_a_search_stays_other_methods(
        tmp_path: Path, db_url: str) -> None:
    """``mmlr poll --pmids`` first, then a create-date search that returns the same PMID: the
    first route wins, the record counts once, and the databases column is the flow as it was
    before the split minus the records added by PMID."""
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        try:
            poll(ctx, backoff_base=0.001)  # the searches: every record of version 1
            write_scenario(corpus, 2)  # 1102 and 1200 new
            # and 1300, not MEDLINE-indexed yet: a search fetches it again, not just finds it
            write_article_set(corpus / "in_process.xml", [synthetic_article(
                1300, created=TODAY - timedelta(days=2), status="In-Process")])
            srv.reload()
            # a curator adds 1200 and 1300 from a reference list, and asks for 4242, which
            # PubMed does not have yet (left out of the answer)
            poll(ctx, pmids=[1200, 1300, 4242], backoff_base=0.001)
            with ctx.sessions() as s:
                assert set(s.exec(select(Record.identified_via).where(
                    col(Record.pmid).in_((1200, 1300))))) == {"pmid"}
                before_search = flow(s)
            poll(ctx, since=SINCE, backoff_base=0.001)  # returns 1200 and 1300, and 1102
            with ctx.sessions() as s:
                routes = dict(s.exec(select(Record.pmid, Record.identified_via)).all())
                searched = s.exec(select(PollRun).where(PollRun.kind == "crdt")
                                  .order_by(col(PollRun.id).desc())).first()
                assert searched is not None and 1300 in searched.pmids  # fetched again
                user = User(email="c@example.org", role="curator")
                s.add(user)
                s.flush()
                record_decision(s, user=user, pmid=1200, decision="include")
                record_decision(s, user=user, pmid=1100, decision="include")
                assess(s, user=user, pmid=1200, verdict="eligible", screeners_per_record=1)
                s.commit()
                after = flow(s)
                drawn = prisma_svg(prisma_counts(s))
            written = export(ctx, "prisma", tmp_path / "prisma.csv")
            [listed] = export(ctx, "csv", tmp_path / "records.csv")
            # the flow as it read before the split: every record in the databases column
            with ctx.engine.begin() as conn:
                conn.execute(text("UPDATE records SET identified_via = 'search'"))
            with ctx.sessions() as s:
                unsplit = flow(s)
        finally:
            ctx.dispose()
    assert routes[1200] == routes[1300] == "pmid" and routes[1102] == "search"
    assert {p for p, r in routes.items() if r == "pmid"} == {1200, 1300}
    assert 4242 not in routes
    assert before_search[OTHER_IDENTIFIED_STAGE] == after[OTHER_IDENTIFIED_STAGE] == 2
    assert after[IDENTIFIED_STAGE] + after[OTHER_IDENTIFIED_STAGE] == len(routes)
    assert after[IDENTIFIED_STAGE] == before_search[IDENTIFIED_STAGE] + 1  # 1102 alone
    assert after[other_stage(ELIGIBLE_STAGE)] == 1 and after[ELIGIBLE_STAGE] == 0
    assert after[other_stage(INCLUDED_STAGE)] == 1 and after[INCLUDED_STAGE] == 1
    assert_both_columns_close(after)
    # the databases column is the unsplit flow minus the records added by PMID, box by box
    for stage in COLUMN:
        assert after[stage] + after[other_stage(stage)] == unsplit[stage], stage
    assert unsplit[OTHER_IDENTIFIED_STAGE] == 0
    assert not any(s.startswith(OTHER_PREFIX) for s in unsplit if s != OTHER_IDENTIFIED_STAGE)
    # both columns join in the studies included
    assert after[TRIALS_STAGE] == unsplit[TRIALS_STAGE]
    assert after[REPORTS_STAGE] == unsplit[REPORTS_STAGE]
    # the diagram: every count of the other-methods column in its box
    shown = boxes(drawn)
    for stage, value in after.items():
        if stage.startswith(OTHER_PREFIX) and value and not stage.startswith(
                (other_stage("of the "), other_stage("reports excluded: "))):
            assert f"n = {value:,}" in shown[box_of(stage)], stage
    # the export: the CSV and the Markdown carry the column
    rows = {r["stage"]: int(r["count"]) for r in csv.DictReader(io.StringIO(
        written[0].read_text(encoding="utf-8")))}
    assert rows[OTHER_IDENTIFIED_STAGE] == 2 and rows[other_stage(ELIGIBLE_STAGE)] == 1
    assert ("Identification via other methods: 2 records a curator added by PMID"
            in written[1].read_text(encoding="utf-8"))
    # and the records export says which records those are
    records = {int(r["pmid"]): r["identified_via"] for r in csv.DictReader(io.StringIO(
        listed.read_text(encoding="utf-8")))}
    assert records == routes


def test_a_pmid_left_out_of_a_pmid_fetch_keeps_that_route_when_a_search_stores_it(
        tmp_path: Path, db_url: str) -> None:
    """A curator asks for 1200 before PubMed serves it; the next create-date poll asks for
    the left-out PMID again and finds it by the search too: the curator identified it first."""
    corpus = tmp_path / "corpus"
    write_scenario(corpus, 1)
    with start_replay_server(corpus, rate_limit=None) as srv:
        ctx = make_context(make_settings(tmp_path, db_url, srv.url))
        try:
            poll(ctx, pmids=[1200], backoff_base=0.001)  # not served: left out
            write_scenario(corpus, 2)
            srv.reload()
            poll(ctx, backoff_base=0.001)
            with ctx.sessions() as s:
                routes = dict(s.exec(select(Record.pmid, Record.identified_via)).all())
                runs = [(r.kind, r.missing) for r in s.exec(select(PollRun)
                                                           .order_by(PollRun.id))]  # type: ignore[arg-type]
                n = flow(s)
        finally:
            ctx.dispose()
    assert runs[0] == ("pmids", [1200])
    assert routes[1200] == "pmid" and routes[1102] == "search"
    assert n[OTHER_IDENTIFIED_STAGE] == 1


# ----------------------------------------------------------------------------- migration
@pytest.mark.empty_database
def test_migration_0016_back_fills_the_route_from_the_poll_runs(db_url: str) -> None:
    from alembic import command

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    # The records table as it was at 0015: without the column the migration adds.
    at_0015 = table_without(Record, "identified_via")
    runs_at_0015 = table_without(PollRun, "dropped_terms")  # added by 0020
    t0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

    def at(hours: float) -> datetime:
        return t0 + timedelta(hours=hours)

    try:
        command.upgrade(cfg, "0015")
        with engine.begin() as conn:
            runs = [(1, "crdt", [1, 2], [], 0),
                    # 2 again (a curator re-fetched a searched record); 3 new; 6 stored before
                    (2, "pmids", [2, 3, 6], [], 24),
                    (3, "watched", [4], [], 48),
                    # 7: asked for by PMID first, left out, then stored by a search
                    (4, "pmids", [7], [7], 60),
                    (5, "crdt", [7], [], 72)]
            conn.execute(runs_at_0015.insert(), [
                {k: v for k, v in PollRun(
                    id=id_, kind=kind, status="completed", query=kind, pmids=pmids,
                    missing=missing, started_at=at(hours), heartbeat_at=at(hours)
                ).model_dump().items() if k != "dropped_terms"}
                for id_, kind, pmids, missing, hours in runs])
            seen = {1: at(0.1), 2: at(0.1), 3: at(24.1), 4: at(48.1), 5: at(1), 6: at(-5),
                    7: at(72.1)}
            conn.execute(at_0015.insert(), [
                {k: v for k, v in Record(pmid=pmid, title=f"record {pmid}", first_seen_at=when,
                                         updated_at=when, last_fetched_at=when
                                         ).model_dump().items() if k != "identified_via"}
                for pmid, when in seen.items()])
        command.upgrade(cfg, "0016")
        with engine.connect() as conn:
            routes = dict(conn.execute(text("SELECT pmid, identified_via FROM records")).all())
        assert routes == {1: "search", 2: "search", 3: "pmid", 4: "watched", 5: "search",
                          6: "search", 7: "pmid"}
        with engine.begin() as conn:  # a record inserted without a route is a search's
            conn.execute(at_0015.insert(), [
                {k: v for k, v in Record(pmid=8, title="later", first_seen_at=utcnow(),
                                         updated_at=utcnow(), last_fetched_at=utcnow()
                                         ).model_dump().items() if k != "identified_via"}])
            assert conn.execute(text("SELECT identified_via FROM records WHERE pmid = 8")
                                ).scalar_one() == "search"
        command.downgrade(cfg, "0015")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM records")).scalar_one() == 8
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()
