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
    form.get_by_role("button", name="Save decision").click()
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
