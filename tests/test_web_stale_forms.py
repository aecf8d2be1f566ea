"""Forms sent after the login they were shown under ended: the curator is told they are logged
out and how to get back, not "Not allowed". Over the real app and database."""

from __future__ import annotations

from typing import Any

import test_web
from sqlmodel import select
from test_web import add_records, as_role, csrf_from, db

from store.models import Decision

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
        data={"decision": "include", "reason": "typed with care", "csrf_token": token})
    assert response.status_code == 401
    assert "Please log in" in response.text and "Not allowed" not in response.text
    assert "you are no longer logged in" in response.text
    assert "nothing was saved" in response.text
    assert 'href="/login?next=/records/90000001%3Frank%3D1"' in response.text
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
