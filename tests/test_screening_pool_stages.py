"""The screening-pool rule (``store.screening_pool``) beyond the queue: the previous version's
reports are not sought for retrieval (the full-text page, its API, the digest and the exports
count as the PRISMA flow does), a conflict on one is not listed for resolution, and the
queue's "decisions so far" counts the pool's decisions. Over the real app and database
(SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL), with the review of
``tests/previous_reports.py``: a seed report a curator included earlier, as the monitor's
re-fetch stores it."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import lxml.html
import pytest
import test_web
from previous_reports import NEW_TRIAL, ORDINARY, store_previous_reports
from sqlmodel import Session, func, select
from test_web import api_as, as_role, csrf_from, db, make_user

from reports.digest import build_digest
from reports.exports import subset_pmids, write_records_csv, write_ris
from reports.prisma import (
    ASSESSED_STAGE,
    ELIGIBLE_STAGE,
    FULLTEXT_AWAITING_STAGE,
    FULLTEXT_EXCLUDED_STAGE,
    INCLUDED_STAGE,
    NOT_RETRIEVED_STAGE,
    prisma_counts,
)
from screening.web.fulltext import fulltext_agreement
from store.fulltext import SoughtRule, sought_pmids
from store.models import Decision, FullTextAssessment, Record, Trial, User

app = test_web.app
users = test_web.users

#: An ordinary record a curator included: the one report sought for retrieval.
SOUGHT = ORDINARY[0]
#: A second curator (the conflicts and the agreement of two people).
SECOND = "curator2@example.org"


def _user_id(session: Session, email: str) -> int:
    return int(session.exec(select(User.id).where(User.email == email)).one() or 0)


def _text(node: Any) -> str:
    return " ".join(node.text_content().split())


# ----------------------------------------------------------------------------- full text
@pytest.fixture
def review(app: Any, users: dict[str, str]) -> list[int]:
    """The review of ``previous_reports``; its included seed report also carries a full-text
    verdict *excluded* stored before this rule (it is a seed trial's report, so it would be
    a "verdict and trial links disagree" case if it were sought); ``SOUGHT`` included, one
    verdict *eligible*. Returns the previous version's reports stored as records."""
    with db(app) as session:
        pool = store_previous_reports(session)
        curator = _user_id(session, users["curator"])
        record = session.get(Record, SOUGHT)
        assert record is not None
        record.decision = "include"
        session.add(record)
        session.add(Decision(pmid=SOUGHT, decision="include", user_id=curator))
        session.add(FullTextAssessment(pmid=pool.previous[1], user_id=curator, kind="verdict",
                                       verdict="excluded", reason="no_outcome"))
        session.commit()
    return pool.previous


def _flow(app: Any) -> dict[str, int]:
    with db(app) as session:
        return {stage: n for stage, n, _ in prisma_counts(session)}


def test_the_full_text_stage_counts_the_reports_prisma_counts(
        app: Any, users: dict[str, str], review: list[int]) -> None:
    """The full-text page, its API and the digest count the reports sought as the PRISMA
    flow does: the seed report a curator included is removed there as a duplicate, so it is
    neither sought, nor assessed, nor listed, whatever verdict it carries."""
    included = review[1]
    curator = as_role(app, users, "curator")
    assert curator.post(f"/records/{SOUGHT}/fulltext", follow_redirects=False, data={
        "verdict": "eligible", "csrf_token": csrf_from(curator.get(f"/records/{SOUGHT}").text),
    }).status_code == 303
    flow = _flow(app)
    assert (flow[INCLUDED_STAGE], flow[ASSESSED_STAGE], flow[ELIGIBLE_STAGE],
            flow[FULLTEXT_EXCLUDED_STAGE], flow[FULLTEXT_AWAITING_STAGE],
            flow[NOT_RETRIEVED_STAGE]) == (1, 1, 1, 0, 0, 0)

    page = lxml.html.fromstring(curator.get("/fulltext").text)
    shown = {cls: int(_text(page.xpath(f'//dd[@class="{cls}"]')[0])) for cls in (
        "ft-sought", "ft-awaiting", "ft-assessed", "ft-eligible", "ft-excluded",
        "ft-not-retrieved")}
    assert shown == {"ft-sought": flow[INCLUDED_STAGE],
                     "ft-awaiting": flow[FULLTEXT_AWAITING_STAGE],
                     "ft-assessed": flow[ASSESSED_STAGE], "ft-eligible": flow[ELIGIBLE_STAGE],
                     "ft-excluded": flow[FULLTEXT_EXCLUDED_STAGE],
                     "ft-not-retrieved": flow[NOT_RETRIEVED_STAGE]}
    listed = {int(p) for p in re.findall(r"/records/(\d+)", curator.get("/fulltext").text)}
    assert SOUGHT in listed and included not in listed
    # (a seed trial's report excluded at full text would be a link mismatch, if it counted)
    mismatch = curator.get("/fulltext?show=mismatch").text
    assert f"/records/{included}" not in mismatch

    api = api_as(app, users, "viewer").get("/api/fulltext").json()
    assert (api["counts"]["sought"], api["counts"]["assessed"], api["counts"]["eligible"],
            api["counts"]["excluded"]) == (flow[INCLUDED_STAGE], flow[ASSESSED_STAGE],
                                           flow[ELIGIBLE_STAGE],
                                           flow[FULLTEXT_EXCLUDED_STAGE])
    assert [r["pmid"] for r in api["reports"]] == [SOUGHT]

    digest = build_digest(app.state.ctx)
    # the decision recorded on the seed report is no news either
    decisions = digest.summary["decisions"]
    assert (decisions["total"], [r["pmid"] for r in decisions["includes"]]) == (1, [SOUGHT])
    fulltext = digest.summary["fulltext"]
    assert fulltext["now"]["sought"] == flow[INCLUDED_STAGE]
    assert fulltext["now"]["excluded"] == flow[FULLTEXT_EXCLUDED_STAGE] == 0
    assert [r["pmid"] for r in fulltext["linked_though_ruled_out"]] == []
    assert [r["pmid"] for r in fulltext["eligible"]] == [SOUGHT]
    assert fulltext["excluded"] == []  # the old verdict on the seed report is not news


def test_the_sought_rule_on_loaded_records_agrees_with_the_sql_conditions(
        app: Any, review: list[int]) -> None:
    """``SoughtRule`` (the pages, the API and the exports, on records already loaded) and
    ``sought_pmids`` (the counts, in SQL) pick the same reports: not the seed report a curator
    included, not a deleted include."""
    with db(app) as session:
        deleted = session.get(Record, ORDINARY[1])
        assert deleted is not None
        deleted.decision, deleted.deleted = "include", True
        session.add(deleted)
        session.commit()
        rule = SoughtRule.for_session(session)
        records = session.exec(select(Record)).all()
        assert {r.pmid for r in records if rule.is_sought(r)} == set(sought_pmids(session)) \
            == {SOUGHT}
        assert rule.is_previous_report(review[1]) and not rule.is_previous_report(SOUGHT)


def test_a_previous_report_takes_no_full_text_verdict(
        app: Any, users: dict[str, str], review: list[int]) -> None:
    """Its record page offers no full-text form and says why; a verdict sent anyway (form or
    API) is refused and stores nothing; the record lists and the CSV export give it no
    full-text state."""
    included = review[1]
    curator = as_role(app, users, "curator")
    page = curator.get(f"/records/{included}").text
    doc = lxml.html.fromstring(page)
    assert not doc.xpath('//form[@id="fulltext-form"]')
    [note] = doc.xpath('//p[contains(@class, "ft-not-applicable")]')
    assert _text(note).startswith("A report of the previous version of the review is not "
                                  "sought for retrieval again")
    refused = curator.post(f"/records/{included}/fulltext", follow_redirects=False,
                           data={"verdict": "eligible", "csrf_token": csrf_from(page)})
    assert refused.status_code == 400
    assert "not sought for retrieval again" in html.unescape(refused.text)
    writer = api_as(app, users, "curator")
    answer = writer.post(f"/api/records/{included}/fulltext", json={"verdict": "eligible"})
    assert answer.status_code == 400 and "previous version" in answer.json()["error"]
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(FullTextAssessment).where(
            FullTextAssessment.pmid == included)).one() == 1  # the old verdict only
    assert writer.get(f"/api/records/{included}/fulltext").json()["applies"] is False

    records = writer.get("/api/records?status=include&limit=1000").json()["records"]
    states = {r["pmid"]: r["fulltext"] for r in records}
    assert states == {included: None, SOUGHT: "awaiting"}
    out = io.StringIO()
    with db(app) as session:
        write_records_csv(session, out)
    rows = {int(r["pmid"]): r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert (rows[included]["fulltext"], rows[included]["fulltext_reason"]) == ("", "")
    assert rows[SOUGHT]["fulltext"] == "awaiting"
    # `mmlr export --only included` is the reports sought; the RIS note gives no full text
    ris = io.StringIO()
    with db(app) as session:
        assert subset_pmids(session, "included") == {SOUGHT}
        write_ris(session, ris)
    notes = {int(m[0]): m[1] for m in re.findall(
        r"AN  - (\d+)\r\n(?:.*\r\n)*?N1  - (.*)\r\n", ris.getvalue())}
    assert notes[SOUGHT].endswith("full text: awaiting assessment")
    assert "full text" not in notes[included]


def test_the_full_text_agreement_is_over_the_reports_sought(
        app: Any, users: dict[str, str], review: list[int]) -> None:
    """Two assessors' blind votes on a seed report (cast before the rule) are not part of
    the assessors' agreement: only those on reports sought are."""
    make_user(app, SECOND, "curator")
    with db(app) as session:
        first, second = _user_id(session, users["curator"]), _user_id(session, SECOND)
        for pmid, verdicts in ((review[1], ("eligible", "not_retrieved")),
                               (SOUGHT, ("eligible", "eligible"))):
            for user_id, verdict in zip((first, second), verdicts, strict=True):
                session.add(FullTextAssessment(pmid=pmid, user_id=user_id, kind="vote",
                                               verdict=verdict))
        session.commit()
        agreement = fulltext_agreement(session)
    assert (agreement.n, agreement.observed) == (1, 1.0)


def test_linking_a_previous_report_asks_for_no_screening(
        app: Any, users: dict[str, str]) -> None:
    """A seed report added as a report of another trial is told nothing about screening it:
    the PRISMA flow counts it among the previous version's reports whatever is decided on
    it, so "screen it so that the flow counts it as included" would send the curator to
    screen a record that is not screened again."""
    with db(app) as session:
        previous = store_previous_reports(session).previous[0]
        new_trial = session.exec(select(Trial.id).where(Trial.name == NEW_TRIAL)).one()
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get(f"/trials/{new_trial}").text)
    done = curator.post(f"/trials/{new_trial}/reports", data={
        "csrf_token": token, "pmid": str(previous), "kind": "update", "citation": "X 2026",
        "confirm_other_trial": "1"},  # a report of a seed trial already
        follow_redirects=False)
    assert done.status_code == 303
    page = html.unescape(curator.get(done.headers["location"]).text)
    assert "Report added." in page and "title/abstract" not in page


# ----------------------------------------------------------------------------- the queue
def test_the_decisions_so_far_are_the_pools(app: Any, users: dict[str, str]) -> None:
    """The decision recorded on a seed report before the rule counts nowhere, so not in the
    queue's "decisions so far" either; a decision on a record of the pool does."""
    with db(app) as session:
        store_previous_reports(session)
    curator = as_role(app, users, "curator")

    def decisions_line() -> str:
        summary = lxml.html.fromstring(curator.get("/").text).xpath('//p[@class="summary"]')
        return _text(summary[0]).rsplit(";", 1)[1].strip()

    assert decisions_line() == "0 decisions so far."
    page = curator.get(f"/records/{SOUGHT}").text
    assert curator.post(f"/records/{SOUGHT}/decision", follow_redirects=False, data={
        "decision": "exclude", "csrf_token": csrf_from(page)}).status_code == 303
    assert decisions_line() == "1 decision so far."


# ----------------------------------------------------------------------------- conflicts
def test_a_conflict_on_a_previous_report_is_not_one_to_resolve(
        app: Any, users: dict[str, str]) -> None:
    """Two screeners who disagree on a seed report (votes it did not need) leave no conflict
    to resolve: /conflicts, its API, ``status=conflict`` and the agreement statistics have
    the pool's conflict only. (The page lists conflicts under either setting: one left when
    switching back to single screening waits there too.)"""
    make_user(app, SECOND, "curator")
    with db(app) as session:
        previous = store_previous_reports(session).previous[0]
        first, second = _user_id(session, users["curator"]), _user_id(session, SECOND)
        for pmid in (previous, ORDINARY[1]):
            session.add(Decision(pmid=pmid, decision="include", kind="vote", user_id=first))
            session.add(Decision(pmid=pmid, decision="exclude", kind="vote", user_id=second))
        session.commit()

    viewer = as_role(app, users, "viewer")
    doc = lxml.html.fromstring(viewer.get("/conflicts").text)
    assert [int(p) for p in doc.xpath('//article[@class="conflict"]/@data-pmid')] == \
        [ORDINARY[1]]
    assert _text(doc.xpath('//span[@class="conflict-total"]')[0]) == "1"
    assert _text(doc.xpath('//dd[@class="agreement-n"]')[0]) == "1"

    api = api_as(app, users, "viewer")
    body = api.get("/api/conflicts").json()
    assert body["total"] == 1 and [c["pmid"] for c in body["conflicts"]] == [ORDINARY[1]]
    assert body["agreement"]["binary"]["n"] == 1
    listed = api.get("/api/records?status=conflict").json()
    assert listed["total"] == 1 and [r["pmid"] for r in listed["records"]] == [ORDINARY[1]]
    # the record's own page still shows both votes: they are kept, and count nowhere
    page = viewer.get(f"/records/{previous}").text
    assert "previous-report" in page and "curator2@example.org" in page


def test_the_pools_figures_in_one_pass_are_the_figures_one_at_a_time(
        app: Any, review: list[int]) -> None:
    """``pool_figures`` (the health banner's and the queue's figures in one statement) gives
    what ``count_pool`` gives condition by condition, and the newest unscreened arrival what
    a query of its own gives, with the previous version's reports, a deleted record and a
    flagged, an audited and an undecided record in the table; one figure alone works too."""
    from datetime import UTC, datetime

    from sqlalchemy import and_
    from sqlmodel import col

    from screening.health import Newest, count_pool, pool_figures
    from screening.votes import in_conflict
    from store.screening_pool import in_screening_pool

    with db(app) as session:
        first, second = (session.get(Record, pmid) for pmid in ORDINARY[:2])
        assert first is not None and second is not None
        first.flagged, first.audit_sample = True, True
        second.deleted = True
        # the newest arrival of the table is deleted: the newest unscreened one is another
        second.first_seen_at = datetime(2031, 1, 1, tzinfo=UTC)
        session.add_all([first, second])
        session.commit()
        undecided = col(Record.decision).is_(None)
        waiting = session.exec(select(Record).where(
            undecided, col(Record.deleted).is_(False), in_screening_pool())).first()
        assert waiting is not None
        waiting.first_seen_at = datetime(2030, 6, 1, 12, 30, tzinfo=UTC)
        session.add(waiting)
        session.commit()
        named = {"all": None, "undecided": undecided,
                 "flagged_left": and_(undecided, col(Record.flagged).is_(True)),
                 "audit": col(Record.audit_sample).is_(True),
                 "included": col(Record.decision).in_(["include", "maybe"]),
                 "conflicts": in_conflict()}
        one_pass = pool_figures(session, named | {
            "newest": Newest(col(Record.first_seen_at), undecided)})
        one_at_a_time: dict[str, Any] = {
            name: count_pool(session, *(() if cond is None else (cond,)))
            for name, cond in named.items()}
        one_at_a_time["newest"] = session.exec(select(func.max(Record.first_seen_at)).where(
            col(Record.deleted).is_(False), in_screening_pool(), undecided)).one()
        assert one_pass == one_at_a_time
        assert one_pass["newest"] == datetime(2030, 6, 1, 12, 30, tzinfo=UTC)
        assert one_pass["all"] > one_pass["undecided"] > one_pass["flagged_left"] > 0
        assert one_pass["included"] >= 1 and one_pass["audit"] >= 1
        assert pool_figures(session, {"all": None}) == {"all": one_pass["all"]}
        assert pool_figures(session, {"none": Newest(col(Record.first_seen_at),
                                                     col(Record.pmid) < 0)}) == {"none": None}


def test_the_queue_page_reads_the_pool_once_for_the_same_figures(
        app: Any, review: list[int]) -> None:
    """The queue page reads its counts and the health banner's in one pass
    (``queue_page_figures``); both come out as when each reads the pool itself, for one
    screener and under dual screening."""
    from screening.web.queue_view import queue_counts, queue_page_figures, screening_health

    with db(app) as session:
        first = session.get(Record, ORDINARY[0])
        assert first is not None
        first.flagged = True
        session.add(first)
        session.commit()
        screener = _user_id(session, "curator@example.org")
        for dual, screener_id in ((False, None), (True, screener)):
            figures = queue_page_figures(session, dual=dual, screener_id=screener_id)
            alone = screening_health(session, dual=dual)
            assert alone is not None and alone["records"] > alone["records_remaining"] > 0
            assert screening_health(session, dual=dual, figures=figures) == alone
            assert queue_counts(session, screener_id=screener_id, figures=figures) \
                == queue_counts(session, screener_id=screener_id)

