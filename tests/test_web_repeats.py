"""A judgement sent twice is stored once (``store.repeats``): a client retrying a POST after a
timeout, a form submitted twice. Decisions, votes, resolutions and full-text judgements, over
the JSON API and the forms, under one and two screeners; a changed judgement is still stored.
Real app and database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import func, select
from test_web import add_records, as_role, csrf_from, db, make_user
from test_web_api import _token

from screening.web.decisions import record_decision
from store.models import AuditLog, Decision, FullTextAssessment, Record, User

app = test_web.app
users = test_web.users
records = test_web.records

SECOND, THIRD = "curator2@example.org", "curator3@example.org"
PMID = 90000002
INCLUDED = 90000031


@pytest.fixture
def screeners() -> int:
    """Screeners per record; a test parametrized with ``screeners`` overrides it."""
    return 1


@pytest.fixture
def settings(settings: Any, screeners: int) -> Any:
    return settings.model_copy(update={"screeners_per_record": screeners})


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def team(app: Any, users: dict[str, str]) -> dict[str, str]:
    make_user(app, SECOND, "curator")
    make_user(app, THIRD, "curator")
    return {**users, "curator2": SECOND, "curator3": THIRD}


def _count(app: Any, model: Any, *where: Any) -> int:
    with db(app) as session:
        return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


def _decide(api: TestClient, email: str, decision: str, reason: str | None = None,
            pmid: int = PMID, **extra: Any) -> Any:
    return api.post("/api/decisions", headers=_token(api.app, email),
                    json={"pmid": pmid, "decision": decision, "reason": reason, **extra})


# ----------------------------------------------------------------------------- decisions
def test_a_retried_decision_is_stored_once_and_says_so(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    first = _decide(api, users["curator"], "exclude", "not maintenance", rank_shown=1)
    assert first.status_code == 201, first.text
    assert first.json()["already_recorded"] is False
    # the client timed out and sends the same request again
    again = _decide(api, users["curator"], "exclude", "not maintenance", rank_shown=1)
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] is True
    assert {k: v for k, v in again.json().items() if k != "already_recorded"} == \
        {k: v for k, v in first.json().items() if k != "already_recorded"}
    assert _count(app, Decision) == 1
    assert _count(app, AuditLog, AuditLog.action == "decision.add") == 1
    # a blank reason is no reason, as stored: the same decision again
    assert _decide(api, users["curator"], "exclude", "  not maintenance ").status_code == 200


def test_a_changed_decision_is_a_new_one_and_so_is_going_back(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    curator = users["curator"]
    assert _decide(api, curator, "exclude").status_code == 201
    changed = _decide(api, curator, "include")
    assert changed.status_code == 201 and changed.json()["already_recorded"] is False
    back = _decide(api, curator, "exclude")  # second thoughts, then back: the history keeps all
    assert back.status_code == 201
    reason = _decide(api, curator, "exclude", "induction only")  # the same label, a new reason
    assert reason.status_code == 201
    assert _count(app, Decision) == 4
    with db(app) as session:
        assert session.get(Record, PMID).decision == "exclude"  # type: ignore[union-attr]


def test_the_same_decision_after_a_colleagues_is_a_new_decision(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    """Single screening: the latest decision counts, so deciding again what one decided
    before a colleague's decision changes the record, and is stored."""
    make_user(app, SECOND, "curator")
    assert _decide(api, users["curator"], "include").status_code == 201
    assert _decide(api, SECOND, "exclude").status_code == 201
    again = _decide(api, users["curator"], "include")
    assert again.status_code == 201 and again.json()["already_recorded"] is False
    assert _count(app, Decision) == 3
    with db(app) as session:
        assert session.get(Record, PMID).decision == "include"  # type: ignore[union-attr]


def test_a_decision_form_sent_twice_is_saved_once(app: Any, users: dict[str, str],
                                                  records: int) -> None:
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get(f"/records/{PMID}").text)
    form = {"decision": "include", "reason": "RCT", "csrf_token": token, "seen_decision": "0"}
    assert "Decision saved: include" in curator.post(f"/records/{PMID}/decision",
                                                     data=form).text
    page = curator.post(f"/records/{PMID}/decision", data=form).text  # a double click
    assert f"Decision already saved: include (PMID {PMID})." in page
    assert _count(app, Decision) == 1


def test_a_retry_that_arrives_while_the_first_is_saved_finds_it(
        app: Any, users: dict[str, str], records: int) -> None:
    """The retry of a slow request arrives before the first one commits: it waits for the
    record's lock, then finds the decision instead of storing a second."""
    ctx = app.state.ctx
    with db(app) as session:
        user = session.exec(select(User).where(User.email == users["curator"])).one()
        session.expunge(user)
    outcome: list[Any] = []

    def retry() -> None:
        try:
            with ctx.sessions() as session:
                saved = record_decision(session, user=user, pmid=PMID, decision="include")
                session.commit()
                outcome.append(saved.created)
        except BaseException as exc:  # reported below, in the test's thread
            outcome.append(exc)

    first = ctx.sessions()
    try:
        assert record_decision(first, user=user, pmid=PMID, decision="include").created
        thread = threading.Thread(target=retry)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the retry should wait for the first attempt's lock"
        first.commit()
    finally:
        first.close()
    thread.join(timeout=60)
    assert outcome == [False]
    assert _count(app, Decision) == 1


# ----------------------------------------------------------------------------- two screeners
@pytest.mark.parametrize("screeners", [2])
def test_a_retried_vote_that_settled_the_record_is_not_refused(
        app: Any, api: TestClient, team: dict[str, str], records: int) -> None:
    assert _decide(api, team["curator"], "include", "RCT").status_code == 201
    agreed = _decide(api, SECOND, "include")
    assert agreed.json()["screening"] == "resolved"
    # the second screener's client never saw that answer and retries: not "already resolved"
    again = _decide(api, SECOND, "include")
    assert again.status_code == 200, again.text
    assert (again.json()["already_recorded"], again.json()["screening"],
            again.json()["record_decision"], again.json()["kind"]) == (
        True, "resolved", "include", "vote")
    assert again.json()["id"] == agreed.json()["id"]
    # a different vote on the resolved record is still refused
    changed = _decide(api, SECOND, "exclude")
    assert changed.status_code == 409 and changed.json()["code"] == "conflict"
    assert _count(app, Decision) == 2


@pytest.mark.parametrize("screeners", [2])
def test_a_retried_vote_in_a_conflict_stays_one_vote(
        app: Any, api: TestClient, team: dict[str, str], records: int) -> None:
    assert _decide(api, team["curator"], "include").status_code == 201
    assert _decide(api, SECOND, "exclude").json()["screening"] == "conflict"
    # the first screener's latest vote is still theirs, whatever the second did since
    again = _decide(api, team["curator"], "include")
    assert again.status_code == 200 and again.json()["screening"] == "conflict"
    assert _count(app, Decision) == 2
    # the vote form sent twice: one vote, and the flash says it was there
    second = as_role(app, team, "curator2")
    token = csrf_from(second.get(f"/records/{PMID}").text)
    page = second.post(f"/records/{PMID}/decision",
                       data={"decision": "exclude", "csrf_token": token}).text
    assert f"Vote already saved: exclude (PMID {PMID})." in page
    assert _count(app, Decision) == 2
    # changing one's vote is a new vote (and here it settles the conflict)
    settled = _decide(api, SECOND, "include")
    assert settled.status_code == 201 and settled.json()["screening"] == "resolved"


@pytest.mark.parametrize("screeners", [2])
def test_a_retried_resolution_is_stored_once(app: Any, api: TestClient, team: dict[str, str],
                                             records: int) -> None:
    _decide(api, team["curator"], "include")
    _decide(api, SECOND, "exclude")
    url = f"/api/records/{PMID}/resolution"
    body = {"decision": "exclude", "reason": "induction, not maintenance"}
    made = api.post(url, json=body, headers=_token(app, THIRD))
    assert made.status_code == 201 and made.json()["already_recorded"] is False
    # a curator retrying their own resolution: not "only an admin can change it"
    again = api.post(url, json=body, headers=_token(app, THIRD))
    assert again.status_code == 200, again.text
    assert again.json()["already_recorded"] is True and again.json()["id"] == made.json()["id"]
    assert _count(app, Decision, Decision.kind == "resolution") == 1
    # another decision is a change of a resolved record: an admin's only
    other = api.post(url, json={**body, "decision": "include"}, headers=_token(app, THIRD))
    assert other.status_code == 403
    # the admin's resolution sent twice from the form: one row, and the flash says so
    admin = as_role(app, team, "admin")
    form = {"decision": "include", "reason": "full text shows maintenance", "back": "record",
            "csrf_token": csrf_from(admin.get(f"/records/{PMID}").text)}
    assert "Resolved: PMID" in admin.post(url.removeprefix("/api"), data=form).text
    page = admin.post(url.removeprefix("/api"), data=form).text
    assert f"Already resolved (this resolution was saved before): PMID {PMID} is include." \
        in page
    assert _count(app, Decision, Decision.kind == "resolution") == 2


# ----------------------------------------------------------------------------- full text
@pytest.fixture
def included(app: Any) -> None:
    add_records(app, [{"pmid": INCLUDED, "title": "An included report", "score": 0.9,
                       "decision": "include"}])


def _judge(api: TestClient, email: str, verdict: str, reason: str | None = None,
           note: str | None = None) -> Any:
    return api.post(f"/api/records/{INCLUDED}/fulltext", headers=_token(api.app, email),
                    json={"verdict": verdict, "reason": reason, "note": note})


def test_a_retried_full_text_verdict_is_stored_once(
        app: Any, api: TestClient, users: dict[str, str], included: None) -> None:
    made = _judge(api, users["curator"], "excluded", "population", "not myeloma")
    assert made.status_code == 201 and made.json()["already_recorded"] is False
    again = _judge(api, users["curator"], "excluded", "population", "not myeloma")
    assert again.status_code == 200 and again.json()["already_recorded"] is True
    assert again.json()["id"] == made.json()["id"]
    assert _count(app, FullTextAssessment) == 1
    # another note, or another verdict, is a new judgement
    assert _judge(api, users["curator"], "excluded", "population",
                  "smouldering myeloma").status_code == 201
    assert _judge(api, users["curator"], "eligible").status_code == 201
    assert _count(app, FullTextAssessment) == 3
    # the record page's form sent twice: once
    curator = as_role(app, users, "curator")
    form = {"verdict": "not_retrieved",
            "csrf_token": csrf_from(curator.get(f"/records/{INCLUDED}").text)}
    curator.post(f"/records/{INCLUDED}/fulltext", data=form)
    page = curator.post(f"/records/{INCLUDED}/fulltext", data=form).text
    assert f"Full-text verdict already saved: full text not retrieved (PMID {INCLUDED})." \
        in page
    assert _count(app, FullTextAssessment) == 4


@pytest.mark.parametrize("screeners", [2])
def test_a_retried_full_text_vote_that_settled_the_report_is_not_refused(
        app: Any, api: TestClient, team: dict[str, str], included: None) -> None:
    assert _judge(api, team["curator"], "eligible").status_code == 201
    assert _judge(api, SECOND, "eligible").json()["state"] == "resolved"
    again = _judge(api, SECOND, "eligible")
    assert again.status_code == 200, again.text
    assert (again.json()["already_recorded"], again.json()["state"]) == (True, "resolved")
    assert _judge(api, SECOND, "not_retrieved").status_code == 409  # a change: settled
    assert _count(app, FullTextAssessment) == 2
    # an admin's resolution retried: one row
    url = f"/api/records/{INCLUDED}/fulltext/resolve"
    body = {"verdict": "not_retrieved", "note": "the journal withdrew the PDF"}
    admin = _token(app, team["admin"])
    assert api.post(url, json=body, headers=admin).status_code == 201
    repeated = api.post(url, json=body, headers=admin)
    assert repeated.status_code == 200 and repeated.json()["already_recorded"] is True
    assert _count(app, FullTextAssessment) == 3
