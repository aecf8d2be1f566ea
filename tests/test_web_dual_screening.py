"""Dual screening in the web app and the JSON API (MMLR_SCREENERS_PER_RECORD=2): votes, the
per-person queue, blinding, conflicts, resolutions and their role checks, agreement
statistics. Real app and database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, func, select
from test_web import as_role, csrf_from, db, make_user
from test_web_api import _token

from store.models import AuditLog, Decision, Record, User

app = test_web.app
users = test_web.users
records = test_web.records

FIRST, SECOND, THIRD = "curator@example.org", "curator2@example.org", "curator3@example.org"


@pytest.fixture
def settings(settings: Any) -> Any:
    """The shared test settings, with dual screening switched on."""
    return settings.model_copy(update={"screeners_per_record": 2})


@pytest.fixture
def team(app: Any, users: dict[str, str]) -> dict[str, str]:
    """Admin, viewer and three curators."""
    make_user(app, SECOND, "curator")
    make_user(app, THIRD, "curator")
    return {**users, "curator2": SECOND, "curator3": THIRD}


def _vote(client: TestClient, pmid: int, decision: str, reason: str = "") -> Any:
    token = csrf_from(client.get(f"/records/{pmid}").text)
    return client.post(f"/records/{pmid}/decision", follow_redirects=False,
                       data={"decision": decision, "reason": reason, "csrf_token": token})


def _api_vote(app: Any, email: str, pmid: int, decision: str, reason: str = "") -> Any:
    api = TestClient(app, raise_server_exceptions=False)
    return api.post("/api/decisions", headers=_token(app, email),
                    json={"pmid": pmid, "decision": decision, "reason": reason})


def _decision(app: Any, pmid: int) -> str | None:
    with db(app) as session:
        record = session.get(Record, pmid)
        assert record is not None
        return record.decision


def _queue_pmids(html: str) -> list[int]:
    return [int(p) for p in re.findall(r'data-pmid="(\d+)"', html)]


def _history(html: str) -> str:
    return html.split("<h2>Decision history</h2>")[1].split("</section>")[0]


def _conflict(app: Any, pmid: int = 90000002) -> None:
    """curator votes include, curator2 exclude (each with a reason)."""
    assert _api_vote(app, FIRST, pmid, "include", "phase 3 <b>RCT</b>").status_code == 201
    assert _api_vote(app, SECOND, pmid, "exclude", "induction, not maintenance").status_code \
        == 201


# ----------------------------------------------------------------------------- votes + queue
def test_first_vote_leaves_the_record_open_for_a_second_screener(
        app: Any, team: dict[str, str], records: int) -> None:
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    response = _vote(first, 90000002, "include", "randomised maintenance")
    assert response.status_code == 303
    assert "It now awaits a second screener" in first.get("/records/90000002").text
    assert _decision(app, 90000002) is None  # one vote resolves nothing
    with db(app) as session:
        row = session.exec(select(Decision)).one()
        assert (row.kind, row.decision, row.pmid) == ("vote", "include", 90000002)
        audit_row = session.exec(select(AuditLog).where(AuditLog.action == "decision.add")).one()
        assert audit_row.details["kind"] == "vote" and audit_row.details["screeners"] == 1
        assert audit_row.details["resolved"] is None
    # the voter's queue no longer has it; the other curator's does, marked for a 2nd screener
    first_queue = first.get("/").text
    assert 90000002 not in _queue_pmids(first_queue)
    assert sorted(_queue_pmids(first_queue)) == [90000001, 90000003, 90000004]
    second_queue = second.get("/").text
    assert _queue_pmids(second_queue)[0] == 90000002
    row_html = second_queue.split('data-pmid="90000002"')[1].split("</tr>")[0]
    assert "needs 2nd screener" in row_html
    assert ("<dt><span class=\"badge second\">needs 2nd screener</span></dt><dd>one person "
            "voted; their vote stays hidden until you vote</dd>") in second_queue
    assert "badge second" not in first_queue  # no such mark there, so no such line
    assert re.search(r'class="count-awaiting-you">4<', second_queue)
    assert re.search(r'class="count-awaiting-you-second">1<', second_queue)
    # of the records awaiting you, not of the flagged ones ("of them" followed the flagged
    # count, and the records with one vote were often not flagged)
    summary = " ".join(re.sub(r"<[^>]+>", " ", second_queue.split('class="summary"')[1]
                              .split("</p>")[0]).split())
    assert "RCT); 1 of the 4, flagged or not, has one vote and needs a second screener;" \
        in summary, summary
    assert re.search(r'class="count-yours-awaiting-second">1<', first_queue)
    assert re.search(r'class="count-awaiting-you">3<', first_queue)
    # the JSON API's undecided list is the same per-person queue
    mine = TestClient(app).get("/api/records?status=undecided",
                               headers=_token(app, FIRST)).json()
    theirs = TestClient(app).get("/api/records?status=undecided",
                                 headers=_token(app, SECOND)).json()
    assert 90000002 not in [r["pmid"] for r in mine["records"]] and mine["total"] == 3
    top = theirs["records"][0]
    assert (top["pmid"], top["screening"], top["screeners"], top["your_vote"],
            top["decision"]) == (90000002, "awaiting_second", 1, None, None)


def test_save_and_next_follows_each_screeners_own_queue(
        app: Any, team: dict[str, str], records: int) -> None:
    first, second = as_role(app, team, "curator"), as_role(app, team, "curator2")
    token = csrf_from(first.get("/records/90000002").text)
    assert "Save vote" in first.get("/records/90000002").text
    moved = first.post("/records/90000002/decision", follow_redirects=False, data={
        "decision": "include", "then": "next", "csrf_token": token})
    # the vote's message on the next record leads back to the one just voted on
    said = first.get(moved.headers["location"]).text
    assert ('Vote saved: include (PMID 90000002). It now awaits a second screener. '
            '<a href="/records/90000002">Open it again</a>') in said
    mine = _queue_pmids(first.get("/").text)
    assert 90000002 not in mine
    assert moved.headers["location"] == f"/records/{mine[0]}?rank=1"
    # the other screener's next record is the one awaiting its second vote (highest score)
    token = csrf_from(second.get("/records/90000001").text)
    theirs = second.post("/records/90000001/decision", follow_redirects=False, data={
        "decision": "exclude", "then": "next", "csrf_token": token})
    assert theirs.headers["location"] == "/records/90000002?rank=1"


def test_both_screeners_agreeing_resolves_the_record(app: Any, team: dict[str, str],
                                                     records: int) -> None:
    assert _api_vote(app, FIRST, 90000003, "exclude").json()["screening"] == "awaiting_second"
    second = as_role(app, team, "curator2")
    _vote(second, 90000003, "exclude", "not maintenance")
    assert "Both screeners agree: resolved as exclude" in second.get("/records/90000003").text
    assert _decision(app, 90000003) == "exclude"
    # resolved: out of every queue, and no more votes change it
    third = as_role(app, team, "curator3")
    assert 90000003 not in _queue_pmids(third.get("/").text)
    late = _api_vote(app, THIRD, 90000003, "include")
    assert late.status_code == 409
    assert late.json()["error"].startswith("PMID 90000003 is already resolved (exclude)")
    assert _decision(app, 90000003) == "exclude"


def test_a_vote_sent_again_after_a_resolution_does_not_say_the_screeners_agree(
        app: Any, team: dict[str, str], records: int) -> None:
    """Back, then the vote form sent again, after a third person resolved the conflict: the
    flash said "Both screeners agree: resolved as exclude" of votes include and exclude."""
    _conflict(app)
    third = as_role(app, team, "curator3")
    assert third.post("/records/90000002/resolution", follow_redirects=False, data={
        "decision": "exclude", "reason": "induction trial",
        "csrf_token": csrf_from(third.get("/conflicts").text)}).status_code == 303
    second = as_role(app, team, "curator2")
    again = _vote(second, 90000002, "exclude", "induction, not maintenance")
    assert again.status_code == 303
    page = second.get("/records/90000002").text
    assert "Vote already saved: exclude (PMID 90000002)." in page
    assert f"resolved as exclude by a resolution by {THIRD}, which settles it" in page
    assert "Both screeners agree" not in page


def test_a_vote_sent_again_on_a_record_decided_under_single_screening(
        app: Any, team: dict[str, str], records: int) -> None:
    """Decided by one curator before dual screening was switched on, then the same vote sent
    again: neither agreement nor a resolution settled it, and the flash says neither."""
    with db(app) as session:
        curator = session.exec(select(User).where(User.email == FIRST)).one()
        session.add(Decision(pmid=90000003, user_id=curator.id, decision="exclude",
                             kind="vote"))
        record = session.get(Record, 90000003)
        assert record is not None
        record.decision = "exclude"
        session.add(record)
        session.commit()
    first = as_role(app, team, "curator")
    assert _vote(first, 90000003, "exclude").status_code == 303
    page = first.get("/records/90000003").text
    assert ("Vote already saved: exclude (PMID 90000003). The record is already resolved as "
            "exclude; votes no longer change it.") in page
    assert "Both screeners agree" not in page and "by a resolution" not in page


def test_a_resolved_include_goes_to_two_full_text_assessors(
        app: Any, team: dict[str, str], records: int) -> None:
    """Dual screening extends to the full text: the form asks for a vote and says two people
    assess each report (single screening's page has no such note; tests/test_fulltext_dual
    has the rules)."""
    _api_vote(app, FIRST, 90000003, "include")
    second = as_role(app, team, "curator2")
    _vote(second, 90000003, "include")
    page = second.get("/records/90000003").text
    assert 'class="fulltext-form' in page and 'class="hint ft-dual"' in page
    assert "Save full-text vote" in page
    assert "Two people assess each report" in second.get("/fulltext").text


@pytest.mark.parametrize(("first", "second", "expected"), [
    ("include", "include", "include"),
    ("maybe", "maybe", "maybe"),
    ("include", "maybe", None),
    ("maybe", "exclude", None),
    ("include", "exclude", None),
])
def test_agreement_rule_over_the_api(app: Any, team: dict[str, str], records: int,
                                     first: str, second: str, expected: str | None) -> None:
    _api_vote(app, FIRST, 90000001, first)
    answer = _api_vote(app, SECOND, 90000001, second).json()
    assert answer["record_decision"] == expected
    assert answer["screening"] == ("conflict" if expected is None else "resolved")
    assert _decision(app, 90000001) == expected
    listed = TestClient(app).get("/api/records?status=conflict",
                                 headers=_token(app, THIRD)).json()
    assert [r["pmid"] for r in listed["records"]] == ([] if expected else [90000001])


def test_the_same_person_twice_is_not_two_screeners(app: Any, team: dict[str, str],
                                                    records: int) -> None:
    first = as_role(app, team, "curator")
    _vote(first, 90000002, "include")
    _vote(first, 90000002, "include")
    assert _decision(app, 90000002) is None
    page = first.get("/records/90000002").text
    assert "one vote, awaiting a second screener" in page
    assert 'class="your-vote">include<' in page


# ----------------------------------------------------------------------------- blinding
def test_a_second_screener_cannot_see_the_first_vote(app: Any, team: dict[str, str],
                                                     records: int) -> None:
    first = as_role(app, team, "curator")
    _vote(first, 90000002, "exclude", "SECRET-FIRST-THOUGHT")
    # Changed while alone: still one screener's vote ("2 votes recorded" told the second
    # screener that two people had voted, or that the first hesitated).
    _vote(first, 90000002, "include", "SECRET-REASON maintenance RCT")
    for role in ("curator2", "admin", "viewer"):  # nobody who has not voted, admins included
        page = as_role(app, team, role).get("/records/90000002").text
        history = _history(page)
        # a viewer may not vote: it was told to
        message = ("1 vote recorded, hidden until a second screener votes." if role == "viewer"
                   else "1 vote recorded, hidden until you vote.")
        assert message in history, role
        assert "curator@example.org" not in history and "decision-row" not in history
        assert "SECRET-REASON" not in page and "SECRET-FIRST" not in page
        assert 'class="current-decision">none<' in page
        api = TestClient(app).get("/api/records/90000002/decisions",
                                  headers=_token(app, team[role]))
        body = api.json()
        assert (body["decisions"], body["hidden_votes"], body["decision"]) == ([], 1, None)
        assert body["hidden_message"] == message
        assert "SECRET-REASON" not in api.text and "include" not in api.text
        listed = TestClient(app).get("/api/records", headers=_token(app, team[role])).json()
        row = next(r for r in listed["records"] if r["pmid"] == 90000002)
        assert (row["decision"], row["your_vote"], row["screeners"]) == (None, None, 1)
    # the voter sees their own vote
    own = TestClient(app).get("/api/records/90000002/decisions",
                              headers=_token(app, FIRST)).json()
    assert [(d["decision"], d["user"], d["kind"]) for d in own["decisions"]] == [
        ("include", FIRST, "vote"), ("exclude", FIRST, "vote")]
    # once the second screener has voted, both see both votes
    second = as_role(app, team, "curator2")
    _vote(second, 90000002, "exclude", "induction trial")
    for client in (first, second):
        history = _history(client.get("/records/90000002").text)
        assert "SECRET-REASON" in history and "induction trial" in history
        assert "hidden until you vote" not in history


# ----------------------------------------------------------------------------- conflicts
def test_conflicts_page_pages_through_every_conflict(app: Any, team: dict[str, str],
                                                     records: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a page of conflicts the rest are a click away, never cut off."""
    import screening.web.routes_conflicts as routes

    monkeypatch.setattr(routes, "CONFLICTS_PAGE_SIZE", 1)
    _conflict(app, 90000002)  # score 0.97
    _conflict(app, 90000003)  # score 0.41
    third = as_role(app, team, "curator3")
    first = third.get("/conflicts").text
    assert _queue_pmids(first.split("</nav>", 1)[1]) == [90000002]
    assert 'href="/conflicts?offset=1">Next' in first and "Previous" not in first
    assert "Conflicts 1–1 of 2, highest score first" in first
    second = third.get("/conflicts?offset=1").text
    assert _queue_pmids(second.split("</nav>", 1)[1]) == [90000003]
    assert 'href="/conflicts?offset=0">← Previous' in second and "Next →" not in second
    beyond = third.get("/conflicts?offset=5").text
    assert "No conflicts from number 6 on (there are 2)" in beyond
    assert third.get("/conflicts?offset=-1").status_code == 400


def test_conflicts_page_lists_both_votes_and_leaves_the_queues(app: Any, team: dict[str, str],
                                                               records: int) -> None:
    _conflict(app)
    assert _decision(app, 90000002) is None
    third = as_role(app, team, "curator3")
    assert 'href="/conflicts"' in third.get("/").text  # the header link
    assert 90000002 not in _queue_pmids(third.get("/").text)  # waits for a resolution
    page = third.get("/conflicts").text
    assert 'class="conflict-total">1<' in page
    article = page.split('data-pmid="90000002"')[1].split("</article>")[0]
    votes = re.findall(r'<td class="who">([^<]*)</td><td class="decision">([^<]*)</td>'
                       r'<td class="reason">([^<]*)</td>', article)
    assert votes == [(FIRST, "include", "phase 3 &lt;b&gt;RCT&lt;/b&gt;"),
                     (SECOND, "exclude", "induction, not maintenance")]
    assert "<b>RCT" not in page and "&lt;script&gt;alert(1)" in article  # escaped title
    assert 'action="/records/90000002/resolution"' in article
    # the screeners of the record see it without a form, and why
    own = as_role(app, team, "curator").get("/conflicts").text
    assert 'action="/records/90000002/resolution"' not in own
    assert "you voted on PMID 90000002; a conflict is resolved by an admin" in own
    # a third person's vote does not settle a conflict
    third_vote = _api_vote(app, THIRD, 90000002, "include")
    assert third_vote.status_code == 409 and "resolve it on /conflicts" in third_vote.json()[
        "error"]
    # the API lists the same
    body = TestClient(app).get("/api/conflicts", headers=_token(app, THIRD)).json()
    assert body["total"] == 1 and body["screeners_per_record"] == 2
    (conflict,) = body["conflicts"]
    assert [(v["user"], v["decision"]) for v in conflict["votes"]] == [
        (FIRST, "include"), (SECOND, "exclude")]
    assert conflict["may_resolve"] is True
    assert TestClient(app).get("/api/conflicts", headers=_token(app, FIRST)).json()[
        "conflicts"][0]["may_resolve"] is False


def test_the_api_pages_through_the_conflicts_like_the_records(
        app: Any, team: dict[str, str], records: int) -> None:
    for pmid in (90000001, 90000002, 90000003):
        _conflict(app, pmid)
    api = TestClient(app, raise_server_exceptions=False)
    viewer = _token(app, team["viewer"])

    def page(query: str) -> dict[str, Any]:
        response = api.get(f"/api/conflicts?{query}", headers=viewer)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    everything = page("")
    assert (everything["total"], everything["limit"], everything["offset"]) == (3, 200, 0)
    order = [c["pmid"] for c in everything["conflicts"]]
    assert order == [90000002, 90000003, 90000001]  # highest score first
    first, second = page("limit=2"), page("limit=2&offset=2")
    assert [c["pmid"] for c in first["conflicts"]] == order[:2]
    assert [c["pmid"] for c in second["conflicts"]] == order[2:]
    assert (second["total"], second["limit"], second["offset"]) == (3, 2, 2)
    assert second["agreement"] == everything["agreement"]  # over every pair, not the page
    assert page("offset=3")["conflicts"] == []
    # the same refusals, in the same words, as GET /api/records
    for query, message in [
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=1001", "limit: Input should be less than or equal to 1000"),
        ("limit=abc", "limit: Input should be a valid integer"),
        ("offset=-1", "offset: Input should be greater than or equal to 0"),
    ]:
        answers = [api.get(f"{path}?{query}", headers=viewer)
                   for path in ("/api/conflicts", "/api/records")]
        assert [a.status_code for a in answers] == [400, 400], query
        assert answers[0].json() == answers[1].json(), query
        assert answers[0].json()["code"] == "invalid", query
        assert answers[0].json()["error"].startswith(message), query


def test_a_screener_changing_their_vote_settles_a_conflict(app: Any, team: dict[str, str],
                                                           records: int) -> None:
    _conflict(app)
    answer = _api_vote(app, SECOND, 90000002, "include", "agreed after discussion").json()
    assert (answer["screening"], answer["record_decision"]) == ("resolved", "include")
    assert "no-conflicts" in as_role(app, team, "curator3").get("/conflicts").text


def test_who_may_resolve(app: Any, team: dict[str, str], records: int) -> None:
    _conflict(app)
    viewer = as_role(app, team, "viewer")
    refused = viewer.post("/records/90000002/resolution", data={
        "decision": "include", "reason": "r", "csrf_token": csrf_from(viewer.get("/").text)})
    assert refused.status_code == 403
    assert "viewer@example.org is a viewer; this needs the curator role" in refused.text
    voter = as_role(app, team, "curator")
    own = voter.post("/records/90000002/resolution", data={
        "decision": "include", "reason": "mine wins", "csrf_token": csrf_from(voter.get("/").text)})
    assert own.status_code == 403
    assert "you voted on PMID 90000002; a conflict is resolved by an admin or a curator who " \
           "did not vote on it" in own.text
    assert _decision(app, 90000002) is None
    third = as_role(app, team, "curator3")
    done = third.post("/records/90000002/resolution", follow_redirects=False, data={
        "decision": "include", "reason": "full text: maintenance randomisation",
        "csrf_token": csrf_from(third.get("/conflicts").text)})
    assert done.status_code == 303 and done.headers["location"] == "/conflicts"
    assert "Resolved: PMID 90000002 is include." in third.get("/conflicts").text
    assert _decision(app, 90000002) == "include"
    with db(app) as session:
        resolution = session.exec(select(Decision).where(Decision.kind == "resolution")).one()
        assert (resolution.decision, resolution.reason) == (
            "include", "full text: maintenance randomisation")
        entry = session.exec(select(AuditLog).where(
            AuditLog.action == "decision.resolve")).one()
        assert entry.actor == THIRD and entry.object_id == "90000002"
        assert entry.details["previous"] is None and entry.details["decision"] == "include"
        assert sorted(entry.details["votes"].values()) == ["exclude", "include"]
        assert entry.details["decision_id"] == resolution.id
    page = third.get("/records/90000002").text
    assert 'class="kind">resolution<' in _history(page)
    # resolved now: only an admin may change it
    again = third.post("/records/90000002/resolution", data={
        "decision": "exclude", "reason": "second thoughts",
        "csrf_token": csrf_from(third.get("/").text)})
    assert again.status_code == 403 and "only an admin can change a resolved record" in again.text
    admin = as_role(app, team, "admin")
    assert "Change the resolved decision" in admin.get("/records/90000002").text
    changed = admin.post("/records/90000002/resolution", follow_redirects=False, data={
        "decision": "exclude", "reason": "protocol: induction comparison", "back": "record",
        "csrf_token": csrf_from(admin.get("/").text)})
    assert changed.status_code == 303 and changed.headers["location"] == "/records/90000002"
    assert _decision(app, 90000002) == "exclude"
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "decision.resolve")).one() == 2


def test_an_admin_who_voted_may_resolve(app: Any, team: dict[str, str], records: int) -> None:
    assert _api_vote(app, team["admin"], 90000003, "include").status_code == 201
    assert _api_vote(app, FIRST, 90000003, "maybe").status_code == 201
    answer = TestClient(app).post("/api/records/90000003/resolution",
                                  headers=_token(app, team["admin"]),
                                  json={"decision": "maybe", "reason": "needs the full text"})
    assert answer.status_code == 201
    assert (answer.json()["kind"], answer.json()["record_decision"]) == ("resolution", "maybe")


def test_resolution_needs_a_conflict_a_reason_and_a_valid_decision(
        app: Any, team: dict[str, str], records: int) -> None:
    third = as_role(app, team, "curator3")
    token = csrf_from(third.get("/").text)
    _api_vote(app, FIRST, 90000001, "include")  # one vote: not a conflict yet
    early = third.post("/records/90000001/resolution",
                       data={"decision": "include", "reason": "r", "csrf_token": token})
    assert early.status_code == 409
    assert "PMID 90000001 has votes from 1 of 2 screeners" in early.text
    _conflict(app)
    cases = [({"decision": "include", "reason": "  "}, 400, "a resolution needs a reason"),
             ({"decision": "delete", "reason": "r"}, 400, "decision &#39;delete&#39; is not valid"),
             ({"reason": "r"}, 400, "decision is missing")]
    for data, status, message in cases:
        response = third.post("/records/90000002/resolution", data={**data, "csrf_token": token})
        assert response.status_code == status and message in response.text, data
    unknown = third.post("/records/12345/resolution",
                         data={"decision": "include", "reason": "r", "csrf_token": token})
    assert unknown.status_code == 404
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision).where(
            Decision.kind == "resolution")).one() == 0
    assert _decision(app, 90000002) is None


def test_resolve_form_refuses_a_missing_or_wrong_csrf_token(app: Any, team: dict[str, str],
                                                            records: int) -> None:
    _conflict(app)
    admin = as_role(app, team, "admin")
    for extra in ({}, {"csrf_token": "x" * 43}):
        response = admin.post("/records/90000002/resolution",
                              data={"decision": "include", "reason": "r", **extra})
        assert response.status_code == 403
        assert "security token is missing or does not match" in response.text
    assert _decision(app, 90000002) is None
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "decision.resolve")).one() == 0


def test_api_resolution_has_the_same_rules_and_errors(app: Any, team: dict[str, str],
                                                      records: int) -> None:
    _conflict(app)
    api = TestClient(app, raise_server_exceptions=False)
    url = "/api/records/90000002/resolution"
    body = {"decision": "exclude", "reason": "not a maintenance comparison"}
    assert api.post(url, json=body).status_code == 401
    viewer = api.post(url, json=body, headers=_token(app, team["viewer"]))
    assert viewer.status_code == 403 and "needs the curator role" in viewer.json()["error"]
    voter = api.post(url, json=body, headers=_token(app, FIRST))
    assert voter.status_code == 403 and voter.json()["error"].startswith(
        "you voted on PMID 90000002")
    bad = api.post(url, json={"decision": "exclude", "reason": 5},
                   headers=_token(app, THIRD))
    assert bad.status_code == 400 and bad.json() == {"code": "invalid",
                                                     "error": "reason must be a string"}
    missing = api.post("/api/records/424242/resolution", json=body, headers=_token(app, THIRD))
    assert missing.status_code == 404
    assert missing.json()["error"] == "record PMID 424242 is not in the database"
    ok = api.post(url, json=body, headers=_token(app, THIRD))
    assert ok.status_code == 201
    assert (ok.json()["kind"], ok.json()["decision"], ok.json()["user"]) == (
        "resolution", "exclude", THIRD)
    assert _decision(app, 90000002) == "exclude"
    again = api.post(url, json=body, headers=_token(app, THIRD))
    assert again.status_code == 200 and again.json()["already_recorded"]  # a retry: stored once
    changed = api.post(url, json={**body, "decision": "include"}, headers=_token(app, THIRD))
    assert changed.status_code == 403  # resolved now: admins only
    assert api.get("/api/conflicts", headers=_token(app, THIRD)).json()["total"] == 0


def test_agreement_statistics_on_the_conflicts_page(app: Any, team: dict[str, str],
                                                    records: int) -> None:
    # blind pairs (curator, curator2): exclude/exclude, include/include, include/exclude,
    # maybe/maybe. Three categories: p_o = .75, p_e = .5·.25 + .25·.5 + .25·.25 = .3125,
    # kappa = .4375/.6875 = .636; include/maybe vs exclude: p_o = .75, marginals .75/.25 and
    # .5/.5, p_e = .5, kappa = .5
    for pmid, a, b in [(90000001, "exclude", "exclude"), (90000002, "include", "include"),
                       (90000003, "include", "exclude"), (90000004, "maybe", "maybe")]:
        _api_vote(app, FIRST, pmid, a)
        _api_vote(app, SECOND, pmid, b)
    # settling the conflict by discussion changes the outcome, not the blind agreement
    _api_vote(app, SECOND, 90000003, "include")
    page = as_role(app, team, "curator3").get("/conflicts").text
    values = dict(re.findall(r'<dd class="([a-z-]+)">([^<]*)</dd>', page))
    assert values == {"agreement-n": "4", "raw-binary": "0.750", "kappa-binary": "0.500",
                      "raw-three": "0.750", "kappa-three": "0.636"}
    stats = TestClient(app).get("/api/conflicts", headers=_token(app, THIRD)).json()["agreement"]
    assert stats["three_way"]["kappa"] == pytest.approx(0.4375 / 0.6875)
    assert stats["binary"]["n"] == 4 and stats["binary"]["kappa"] == pytest.approx(0.5)


def test_a_vote_corrected_before_the_second_screener_voted_counts_as_agreement(
        app: Any, team: dict[str, str], records: int) -> None:
    """The reviewer's records: on 90000001 curator clicks include, corrects it to exclude
    while still alone, then curator2 excludes; the other three both include. Taking each
    screener's first vote gave raw agreement 0.75 and κ 0 on four records that never
    conflicted. Blind judgements: exclude/exclude and three include/include, so p_o 1,
    p_e = .75·.75 + .25·.25 = .625, κ 1 (binary and three categories alike)."""
    assert _api_vote(app, FIRST, 90000001, "include").status_code == 201
    assert _api_vote(app, FIRST, 90000001, "exclude").status_code == 201
    assert _api_vote(app, SECOND, 90000001, "exclude").json()["screening"] == "resolved"
    for pmid in (90000002, 90000003, 90000004):
        _api_vote(app, FIRST, pmid, "include")
        assert _api_vote(app, SECOND, pmid, "include").json()["screening"] == "resolved"
    stats = TestClient(app).get("/api/conflicts", headers=_token(app, THIRD)).json()["agreement"]
    for name in ("binary", "three_way"):
        assert stats[name] == {"n": 4, "raw_agreement": 1.0, "expected": pytest.approx(0.625),
                               "kappa": pytest.approx(1.0)}, name
    values = _agreement_values(app)
    assert (values["raw-binary"], values["kappa-binary"], values["kappa-three"]) == (
        "1.000", "1.000", "1.000")


def _agreement_values(app: Any) -> dict[str, str]:
    page = as_role(app, {"curator3": THIRD}, "curator3").get("/conflicts").text
    return dict(re.findall(r'<dd class="([a-z-]+)">([^<]*)</dd>', page))


def test_kappa_of_a_single_pair_is_not_shown_as_a_number(app: Any, team: dict[str, str],
                                                         records: int) -> None:
    _conflict(app)  # one record screened twice: include / exclude
    values = _agreement_values(app)
    assert values["agreement-n"] == "1" and values["raw-binary"] == "0.000"
    assert values["kappa-binary"] == "not enough paired votes"
    assert values["kappa-three"] == "not enough paired votes"
    stats = TestClient(app).get("/api/conflicts", headers=_token(app, THIRD)).json()["agreement"]
    assert stats["binary"]["n"] == 1
    assert stats["binary"]["kappa"] is None and stats["three_way"]["kappa"] is None


def test_kappa_with_every_vote_in_one_category_says_undefined(app: Any, team: dict[str, str],
                                                              records: int) -> None:
    # include/include and maybe/include: include/maybe vs exclude has every vote in one
    # category (p_e = 1); three categories: p_o = .5, p_e = .5·1 + .5·0 = .5, kappa = 0
    for pmid, a, b in [(90000001, "include", "include"), (90000002, "maybe", "include")]:
        _api_vote(app, FIRST, pmid, a)
        _api_vote(app, SECOND, pmid, b)
    values = _agreement_values(app)
    assert values["agreement-n"] == "2"
    assert values["kappa-binary"] == "undefined: all votes in one category"
    assert values["kappa-three"] == "0.000"  # a real zero is still a number
    stats = TestClient(app).get("/api/conflicts", headers=_token(app, THIRD)).json()["agreement"]
    assert stats["binary"]["kappa"] is None and stats["binary"]["expected"] == 1.0
    assert stats["three_way"]["kappa"] == pytest.approx(0.0)


def test_health_banner_counts_second_votes_and_conflicts(app: Any, team: dict[str, str],
                                                         records: int) -> None:
    _conflict(app)  # 90000002: include / exclude
    assert _api_vote(app, FIRST, 90000003, "include").status_code == 201  # one vote
    for email in (FIRST, SECOND):  # 90000001 resolved by agreement
        assert _api_vote(app, email, 90000001, "exclude").status_code == 201
    page = as_role(app, team, "viewer").get("/").text
    banner = page.split('aria-label="Screening health"')[1].split("</section>")[0]
    items = dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", banner))
    # screened: voted on, settled or not (90000001, 90000002, 90000003)
    assert items["records"] == "4" and items["screened"] == "3"
    assert items["records remaining"] == "1"  # 90000004: nobody voted on it
    assert items["awaiting second vote"] == "1"  # 90000003
    assert items["conflicts awaiting resolution"] == "1"  # 90000002
    assert items["includes found"] == "2"  # 90000002 and 90000003 have an include vote
    # The stopping test counts the records voted on, in the order of their first vote.
    assert ("<strong>Stopping test:</strong> cannot yet claim recall ≥ 95% (p = 0.500; the "
            "last record screened held 0 includes; 1 unscreened)") in banner
    assert "<summary>Assumptions</summary>" in banner
    # 90000003, of the audit sample, has one include vote: screened, an include
    assert (items["audit screened"], items["audit includes"]) == ("1", "1")


def test_single_screening_pages_are_unchanged(settings: Any, tmp_path: Any) -> None:
    """The header link, counts and blinding exist only under dual screening."""
    from screening.web.app import create_app

    single = create_app(settings.model_copy(update={"screeners_per_record": 1}))
    try:
        emails = {"admin": "a@example.org", "curator": FIRST, "viewer": "v@example.org"}
        for role, email in emails.items():
            make_user(single, email, role)
        test_web.add_records(single, [{"pmid": 7, "title": "t", "score": 0.5}])
        curator = as_role(single, emails, "curator")
        queue = curator.get("/").text
        assert 'href="/conflicts"' not in queue and "awaiting your vote" not in queue
        assert "awaiting second vote" not in queue and "conflicts awaiting" not in queue
        _vote(curator, 7, "include", "reason shown to all")
        assert _decision(single, 7) == "include"
        viewer_page = as_role(single, emails, "viewer").get("/records/7").text
        assert "reason shown to all" in _history(viewer_page)
        with db(single) as session:
            # a decision, not a vote: no blind pair for the screeners' agreement
            assert session.exec(select(Decision.kind)).one() == "decision"
            assert session.exec(select(col(AuditLog.details)).where(
                AuditLog.action == "decision.add")).one().get("kind") is None
    finally:
        single.state.ctx.dispose()


def test_each_conflicts_resolve_button_is_named_after_its_record(
        app: Any, team: dict[str, str], records: int) -> None:
    from test_web_accessibility import button_names

    _conflict(app, 90000002)
    _conflict(app, 90000003)
    names = button_names(as_role(app, team, "curator3").get("/conflicts").text)
    assert {"Save resolution for PMID 90000002", "Save resolution for PMID 90000003"} <= set(
        names)


@pytest.mark.parametrize("back", ["conflicts", "record"])
def test_a_resolution_without_a_reason_comes_back_to_its_form(
        app: Any, team: dict[str, str], records: int, back: str) -> None:
    """A blank reason is refused next to the form it came from, with the decision chosen
    still chosen: not on an error page that loses it."""
    import lxml.html

    _conflict(app)
    third = as_role(app, team, "curator3")
    page = third.get("/conflicts" if back == "conflicts" else "/records/90000002").text
    refused = third.post("/records/90000002/resolution", data={
        "decision": "exclude", "reason": "  ", "back": back, "csrf_token": csrf_from(page)})
    assert refused.status_code == 400
    (form,) = lxml.html.fromstring(refused.text).xpath('//form[@id="resolve-90000002"]')
    assert form.xpath('string(.//p[@role="alert"])').startswith("a resolution needs a reason")
    assert form.xpath('.//input[@name="decision"][@checked]/@value') == ["exclude"]
    assert form.xpath('.//textarea/@aria-invalid') == ["true"]
    assert ("Decision history" in refused.text) == (back == "record")  # the page it came from
    assert _decision(app, 90000002) is None


# ----------------------------------------------------------------------------- audit blinding
def test_the_audit_trail_hides_a_blind_vote_from_admins_until_the_second_vote(
        app: Any, team: dict[str, str], records: Any) -> None:
    """docs/curation.md, "Blinding": votes are hidden from everyone else, admins included
    (admins screen too). The trail showed the first vote's decision and full-text verdict."""
    from screening.web.audit_blinding import HIDDEN
    from store.fulltext import assess
    from store.models import User

    blind, passed = 90000002, 90000003
    assert _api_vote(app, FIRST, blind, "exclude", "not an RCT").status_code == 201
    for email in (FIRST, SECOND):  # both agree: title/abstract settled, full text next
        assert _api_vote(app, email, passed, "include").status_code == 201
    with db(app) as session:
        first = session.exec(select(User).where(User.email == FIRST)).one()
        assess(session, user=first, pmid=passed, verdict="excluded", reason="population",
               screeners_per_record=2)
        session.commit()
    admin = as_role(app, team, "admin")
    api = TestClient(app)
    headers = _token(app, team["admin"])

    def judgements() -> dict[tuple[str, int], list[dict[str, Any]]]:
        rows = api.get("/api/audit?object_type=record", headers=headers).json()["rows"]
        out: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault((row["action"], int(row["object_id"])), []).append(row["details"])
        return out

    seen = judgements()
    (vote,) = seen[("decision.add", blind)]
    assert vote["decision"] == HIDDEN and vote["kind"] == "vote"
    (verdict,) = seen[("fulltext.assess", passed)]
    assert verdict["verdict"] == verdict["reason"] == HIDDEN
    # the votes of the settled record are no secret any more
    assert sorted(d["decision"] for d in seen[("decision.add", passed)]) == ["include"] * 2
    page = admin.get(f"/admin/audit?object_id={blind}").text
    assert HIDDEN in page and "not an RCT" not in page and "exclude" not in page
    csv_text = admin.get("/admin/audit.csv?object_type=record").text
    assert "population" not in csv_text and csv_text.count(HIDDEN) == 3
    # the screener reads their own vote (were they an admin: the trail is admins')
    with db(app) as session:
        session.exec(select(User).where(User.email == FIRST)).one().role = "admin"
        session.commit()
    mine = TestClient(app).get("/api/audit?object_type=record",
                               headers=_token(app, FIRST)).json()["rows"]
    assert HIDDEN not in str(mine)
    # once the second vote is in, the trail shows the first whole
    assert _api_vote(app, SECOND, blind, "exclude").status_code == 201
    assert [d["decision"] for d in judgements()[("decision.add", blind)]] == ["exclude"] * 2
