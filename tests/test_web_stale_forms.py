"""Forms sent after the login they were shown under ended: the curator is told they are logged
out and how to get back, not "Not allowed". Over the real app and database."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import select
from test_web import add_records, as_role, csrf_from, db

from screening.web.deps import SESSION_MAX_AGE
from store.models import Decision, LoginSession, utcnow

app = test_web.app
users = test_web.users


def test_a_form_sent_after_logging_out_elsewhere_says_so_and_leads_back(
        app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    curator = as_role(app, users, "curator")
    form_page = curator.get("/records/90000001?rank=1").text
    token = csrf_from(form_page)
    # the same browser logs out in another tab: the cookie's login and token are gone
    assert curator.post("/logout", data={"csrf_token": token},
                        follow_redirects=False).status_code == 303
    response = curator.post(
        "/records/90000001/decision", follow_redirects=False,
        headers={"Referer": "http://testserver/records/90000001?rank=1"},
        data={"decision": "include", "reason": "typed with care", "csrf_token": token,
              "seen_decision": "0", "rank_shown": "1"})
    assert response.status_code == 401
    assert "Please log in" in response.text and "Not allowed" not in response.text
    assert "you are no longer logged in" in response.text
    assert "nothing was saved" in response.text
    assert 'href="/login?next=/records/90000001%3Frank%3D1"' in response.text
    # Back does not bring the filled-in form back (pages are no-store, and the page itself
    # now asks for a login): what was typed is given back, for copying
    assert "What you sent (not saved)" in response.text
    assert "<dt>reason</dt><dd><pre>typed with care</pre></dd>" in response.text
    # the form's hidden bookkeeping is not what anyone typed: not listed
    assert "<dt>seen_decision</dt>" not in response.text
    assert "<dt>rank_shown</dt>" not in response.text
    assert token not in response.text  # not the old form token
    assert "your browser&#39;s Back button" not in response.text
    with db(app) as session:
        assert session.exec(select(Decision)).first() is None


def test_a_form_sent_after_the_session_expired_says_nothing_was_saved_and_gives_it_back(
        app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000001").text)
    with db(app) as session:  # the login is older than 12 hours
        for row in session.exec(select(LoginSession)).all():
            row.created_at = utcnow() - timedelta(seconds=SESSION_MAX_AGE + 60)
            session.add(row)
        session.commit()
    response = curator.post(
        "/records/90000001/decision", follow_redirects=False,
        headers={"Referer": "http://testserver/records/90000001"},
        data={"decision": "exclude", "reason": "<b>not</b> an RCT", "csrf_token": token})
    assert response.status_code == 401
    assert "your session ended (after 12 hours, or logged out in another window): nothing " \
        "was saved" in response.text
    assert "<dt>reason</dt><dd><pre>&lt;b&gt;not&lt;/b&gt; an RCT</pre></dd>" in response.text
    assert 'href="/login?next=/records/90000001"' in response.text
    # without a Referer, the page the form's target belongs to (it was "/")
    bare = curator.post("/records/90000001/decision", follow_redirects=False,
                        data={"decision": "exclude", "csrf_token": token})
    assert bare.status_code == 401 and 'href="/login?next=/records/90000001"' in bare.text
    with db(app) as session:
        assert session.exec(select(Decision)).first() is None


def test_a_wrong_token_while_logged_in_is_still_refused_as_before(
        app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    curator = as_role(app, users, "curator")
    response = curator.post("/records/90000001/decision", follow_redirects=False,
                            data={"decision": "include", "csrf_token": "x" * 40})
    assert response.status_code == 403
    assert "security token is missing or does not match" in response.text


EVIL_TEXT = "Your session expired: call +1 555 0100 to restore it"
CROSS_SITE = [{"Origin": "https://evil.example"},
              {"Origin": "null"},
              {"Referer": "https://evil.example/page"},
              {"Sec-Fetch-Site": "cross-site"},
              {"Origin": "http://testserver.evil.example"},
              {"Origin": "http://testserver:8080"}]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=lambda h: " ".join(
    f"{k}={v}" for k, v in h.items()))
def test_a_form_another_site_sends_is_refused_without_its_text(
        app: Any, users: dict[str, str], headers: dict[str, str]) -> None:
    """A page elsewhere posting to mmlr: the browser sends no login cookie (SameSite=Lax), so
    mmlr answered 401, told the (logged-in) curator they were logged out, and listed the other
    site's fields under "What you sent (not saved)". Now it says the form came from another
    site and shows none of it."""
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    elsewhere = TestClient(app, raise_server_exceptions=False)  # no cookie: cross-site
    response = elsewhere.post("/records/90000001/decision", follow_redirects=False,
                              headers=headers,
                              data={"decision": "include", "reason": EVIL_TEXT})
    assert response.status_code == 403, response.text
    assert "this form was sent from another site, not from mmlr&#39;s own pages: nothing " \
        "was saved" in response.text
    assert "no longer logged in" not in response.text
    assert "What you sent" not in response.text and EVIL_TEXT not in response.text
    # no new session cookie: in a browser it would replace the login cookie the other site's
    # request went without, and log the curator out
    assert "set-cookie" not in response.headers
    # a character mmlr refuses does not make it give the text back either
    refused = elsewhere.post("/records/90000001/decision", follow_redirects=False,
                             headers=headers,
                             data={"decision": "include", "reason": EVIL_TEXT + "\u202e"})
    assert refused.status_code == 400
    assert "What you sent" not in refused.text and EVIL_TEXT not in refused.text
    assert "set-cookie" not in refused.headers
    with db(app) as session:
        assert session.exec(select(Decision)).first() is None


@pytest.mark.parametrize("headers", [{"Origin": "http://testserver"},
                                     {"Origin": "http://127.0.0.1:8000"},  # MMLR_BASE_URL
                                     {"Referer": "http://testserver/records/90000001"},
                                     {"Sec-Fetch-Site": "same-origin"}, {}],
                         ids=["origin", "base-url", "referer", "sec-fetch-site", "none"])
def test_mmlrs_own_forms_after_the_login_ended_still_get_their_text_back(
        app: Any, users: dict[str, str], headers: dict[str, str]) -> None:
    """The same request from mmlr's own page (its Origin, or its Referer, is mmlr's address:
    the request's or MMLR_BASE_URL's), or saying nothing of where it came from: the login
    ended, and what was typed is given back, as before."""
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    curator = as_role(app, users, "curator")
    token = csrf_from(curator.get("/records/90000001").text)
    assert curator.post("/logout", data={"csrf_token": token},
                        follow_redirects=False).status_code == 303
    response = curator.post("/records/90000001/decision", follow_redirects=False,
                            headers=headers,
                            data={"decision": "include", "reason": "typed with care",
                                  "csrf_token": token})
    assert response.status_code == 401
    assert "you are no longer logged in" in response.text
    assert "<dt>reason</dt><dd><pre>typed with care</pre></dd>" in response.text


def _flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in
            re.findall(r'<p class="flash[^"]*" role="status">([^<]*)</p>', page)]


def _seen(page: str) -> str:
    match = re.search(r'name="seen_decision" value="(\d+)"', page)
    assert match, "no seen_decision in the decision form"
    return match.group(1)


def test_a_decision_over_one_made_meanwhile_by_someone_else_says_so(
        app: Any, users: dict[str, str]) -> None:
    """Single screening: the latest decision counts, so a decision saved from a page opened
    before a colleague's decision replaces theirs: the curator is told, with who and what."""
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    test_web.make_user(app, "second@example.org", "curator")
    first = as_role(app, users, "curator")
    second = as_role(app, {"curator": "second@example.org"}, "curator")
    stale_page = first.get("/records/90000001").text  # opened, then read for a while
    fresh_page = second.get("/records/90000001").text
    assert second.post("/records/90000001/decision", data={
        "decision": "exclude", "csrf_token": csrf_from(fresh_page),
        "seen_decision": "0"}).status_code == 200
    assert _seen(stale_page) == "0"
    saved = first.post("/records/90000001/decision", data={
        "decision": "include", "csrf_token": csrf_from(stale_page),
        "seen_decision": _seen(stale_page)})
    said = _flashes(saved.text)
    assert said[0] == "Decision saved: include (PMID 90000001)."
    assert said[1].startswith("second@example.org decided exclude on PMID 90000001 at ")
    assert "after you opened it: your decision (include) now counts" in said[1]
    # a page opened after the colleague's decision, or one's own second thoughts: no warning
    again = first.get("/records/90000001").text
    said = _flashes(first.post("/records/90000001/decision", data={
        "decision": "maybe", "csrf_token": csrf_from(again), "seen_decision": _seen(again)}).text)
    assert said == ["Decision saved: maybe (PMID 90000001)."]
