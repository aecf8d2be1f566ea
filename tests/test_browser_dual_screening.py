"""Dual screening in real Chromium (Playwright) against uvicorn on loopback: two curators vote
differently, neither sees the other's vote first, and an admin resolves the conflict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import test_browser_web
import test_web
from sqlmodel import col, select
from test_browser_web import _log_in, _page, _shot
from test_web import db, make_user

from store.models import Decision, Record

pytestmark = pytest.mark.browser

app = test_web.app
users = test_web.users
records = test_web.records
server = test_browser_web.server
browser = test_browser_web.browser

SECOND = "curator2@example.org"


@pytest.fixture
def settings(settings: Any) -> Any:
    """The shared test settings, with dual screening switched on."""
    return settings.model_copy(update={"screeners_per_record": 2})


def _vote(page: Any, base: str, decision: str, reason: str) -> None:
    page.goto(f"{base}/")
    page.locator("tr[data-pmid='90000002'] a").click()
    page.wait_for_url(f"{base}/records/90000002?rank=1")
    form = page.locator("form.decision-form")
    form.get_by_label(decision.capitalize()).check()
    form.get_by_label("Reason (optional)").fill(reason)
    form.get_by_role("button", name="Save vote").click()
    page.wait_for_url(f"{base}/records/90000002")


def test_two_curators_disagree_and_an_admin_resolves(app: Any, users: dict[str, str],
                                                    records: int, server: str, browser: Any,
                                                    tmp_path: Path) -> None:
    make_user(app, SECOND, "curator")
    problems: list[str] = []

    first = _page(browser, problems)
    _log_in(first, server, users["curator"])
    _vote(first, server, "include", "maintenance RCT <first>")
    assert "awaits a second screener" in first.locator(".flash").inner_text()
    assert first.locator("tr.decision-row td.decision").all_inner_texts() == ["include"]
    first.goto(f"{server}/")  # out of the voter's queue
    assert first.locator("tr[data-pmid]").count() == 3
    assert first.locator("tr[data-pmid='90000002']").count() == 0

    second = _page(browser, problems)
    _log_in(second, server, SECOND)
    row = second.locator("tr[data-pmid='90000002']")
    assert row.locator(".badge.second").inner_text() == "needs 2nd screener"
    row.locator("a").click()
    second.wait_for_url(f"{server}/records/90000002?rank=1")
    # blind: the first vote is neither listed nor hinted at
    assert second.locator(".votes-hidden").inner_text() == \
        "1 vote recorded, hidden until you vote."
    assert second.locator("tr.decision-row").count() == 0
    assert "maintenance RCT <first>" not in second.content()
    _shot(second, tmp_path, "second-screener-blind")
    _vote(second, server, "exclude", "induction comparison")
    assert "the record is now on the conflicts page" in second.locator(".flash").inner_text()
    assert sorted(second.locator("tr.decision-row td.decision").all_inner_texts()) == [
        "exclude", "include"]
    with db(app) as session:
        record = session.get(Record, 90000002)
        assert record is not None and record.decision is None

    admin = _page(browser, problems)
    _log_in(admin, server, users["admin"])
    admin.locator("header.site").get_by_role("link", name="Conflicts").click()
    admin.wait_for_url(f"{server}/conflicts")
    conflict = admin.locator("article.conflict[data-pmid='90000002']")
    votes = conflict.locator("tr.vote-row")
    assert votes.locator("td.who").all_inner_texts() == [users["curator"], SECOND]
    assert votes.locator("td.decision").all_inner_texts() == ["include", "exclude"]
    assert votes.locator("td.reason").all_inner_texts() == ["maintenance RCT <first>",
                                                            "induction comparison"]
    assert admin.locator(".agreement-n").inner_text() == "1"
    _shot(admin, tmp_path, "conflicts")
    form = conflict.locator("form.resolve-form")
    form.get_by_label("Include").check()
    form.get_by_label("Reason for the resolution").fill("full text: randomised maintenance")
    form.get_by_role("button", name="Save resolution").click()
    admin.wait_for_url(f"{server}/conflicts")
    assert admin.locator(".flash").inner_text() == "Resolved: PMID 90000002 is include."
    assert admin.locator(".no-conflicts").count() == 1
    with db(app) as session:
        record = session.get(Record, 90000002)
        assert record is not None and record.decision == "include"
        kinds = session.exec(select(Decision.kind, Decision.decision)
                             .order_by(col(Decision.id))).all()
        assert [tuple(k) for k in kinds] == [("vote", "include"), ("vote", "exclude"),
                                             ("resolution", "include")]
    first.goto(f"{server}/records/90000002")
    assert first.locator(".current-decision").inner_text() == "include"
    assert first.locator("tr.resolution-row td.who").inner_text() == users["admin"]
    assert problems == []


def _ft_vote(page: Any, base: str, pmid: int, verdict: str, reason: str = "") -> None:
    page.goto(f"{base}/records/{pmid}")
    form = page.locator("form.fulltext-form")
    form.get_by_label(verdict, exact=True).check()
    if reason:
        form.get_by_label("Reason (only for an excluded report)").select_option(reason)
    form.get_by_role("button", name="Save full-text vote").click()
    page.wait_for_url(f"{base}/records/{pmid}#fulltext")


def test_two_full_text_assessors_disagree_and_a_third_curator_resolves(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any,
        tmp_path: Path) -> None:
    """The full text under dual screening: the second assessor does not see the first vote;
    two different reasons for one exclusion are a conflict; a curator who did not assess the
    report resolves it with a note, and /fulltext shows the settled verdict."""
    make_user(app, SECOND, "curator")
    make_user(app, "curator3@example.org", "curator")
    with db(app) as s:
        record = s.get(Record, 90000003)
        assert record is not None
        record.decision = "include"  # resolved at title/abstract screening
        s.add(record)
        s.commit()
    problems: list[str] = []
    first = _page(browser, problems)
    _log_in(first, server, users["curator"])
    _ft_vote(first, server, 90000003, "Excluded", "population")
    assert "awaiting a second assessor" in first.locator(".flash").inner_text()

    second = _page(browser, problems)
    _log_in(second, server, SECOND)
    second.goto(f"{server}/records/90000003")
    section = second.locator("section#fulltext")
    assert section.locator(".ft-hidden").inner_text() == (
        "1 vote recorded, hidden until you assess the report yourself.")
    assert section.locator(".ft-history, .ft-votes").count() == 0
    _shot(second, tmp_path, "ft-dual-blind")
    _ft_vote(second, server, 90000003, "Excluded", "no_outcome")
    assert "a conflict to resolve" in second.locator(".flash").inner_text()
    votes = second.locator("section#fulltext .ft-vote").all_inner_texts()
    assert len(votes) == 2 and "not multiple myeloma" in votes[0] \
        and "no time-to-event outcome" in votes[1]
    assert second.locator("form.fulltext-resolve-form").count() == 0

    third = _page(browser, problems)
    _log_in(third, server, "curator3@example.org")
    third.goto(f"{server}/fulltext")
    row = third.locator("tr[data-pmid='90000003']")
    assert "conflict" in row.locator(".verdict").inner_text()
    row.get_by_role("link", name="90000003").click()
    form = third.locator("form.fulltext-resolve-form")
    form.get_by_label("Excluded", exact=True).check()
    form.get_by_label("Reason (only for an excluded report)").select_option("no_outcome")
    form.get_by_label("Why (needed: what the discussion or the protocol decided)").fill(
        "only response rates <reported>; no PFS")
    _shot(third, tmp_path, "ft-dual-resolve")
    form.get_by_role("button", name="Save full-text resolution").click()
    third.wait_for_url(f"{server}/records/90000003#fulltext")
    assert third.locator(".ft-current").inner_text() == (
        "excluded: no time-to-event outcome (PFS, EFS or OS) reported")
    assert "only response rates <reported>; no PFS" in third.locator(".ft-note").inner_text()
    third.goto(f"{server}/fulltext")
    assert third.locator(".ft-excluded").inner_text() == "1"
    assert third.locator(".ft-conflicts").inner_text() == "0"
    assert third.locator(".ft-agreement-n").inner_text() == "1"
    _shot(third, tmp_path, "ft-dual-list")
    assert problems == []


def test_a_resolution_beside_the_abstract_is_reachable_by_scrolling_the_page(
        app: Any, users: dict[str, str], records: int, server: str, browser: Any) -> None:
    """An admin who voted on a conflict has the vote and the resolution beside the abstract:
    a column taller than the window. Its reason and button are reached by scrolling the page,
    not hidden below the window in a box that scrolls on its own."""
    from test_web_dual_screening import _api_vote

    _api_vote(app, users["admin"], 90000002, "include")
    _api_vote(app, users["curator"], 90000002, "exclude")
    page = _page(browser, [])
    page.set_viewport_size({"width": 1280, "height": 700})
    _log_in(page, server, users["admin"])
    page.goto(f"{server}/records/90000002")
    button = page.get_by_role("button", name="Save resolution for PMID 90000002")
    clipped = button.evaluate("""b => {
        for (let e = b.parentElement; e && e !== document.body; e = e.parentElement) {
            const s = getComputedStyle(e);
            if (s.position === 'sticky' || /(auto|scroll|hidden)/.test(s.overflowY)) return true;
        }
        return false; }""")
    assert not clipped
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= 700
    # the decision alone (a curator who may vote, not resolve) does stay in view
    page.goto(f"{server}/records/90000001")
    assert page.locator(".record-decide").evaluate("e => getComputedStyle(e).position") \
        == "sticky"
