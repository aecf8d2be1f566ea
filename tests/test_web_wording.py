"""What a haematologist reads on the pages: counts with the right plural. Over the real app
and database (starlette TestClient)."""

from __future__ import annotations

import html
import re
from typing import Any

import test_web
from test_web import add_records, as_role, csrf_from

app = test_web.app
users = test_web.users


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_queue_counts_say_one_record_and_one_decision(app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000001, "title": "Only record", "score": 0.9,
                       "flagged": True}])
    curator = as_role(app, users, "curator")
    first = _text(curator.get("/").text)
    assert "1 of 1 record awaiting a decision (1 flagged as a likely maintenance RCT); " \
           "0 decisions so far." in first
    page = curator.get("/records/90000001").text
    assert curator.post("/records/90000001/decision", follow_redirects=False, data={
        "decision": "include", "reason": "", "csrf_token": csrf_from(page)}).status_code == 303
    assert "0 of 1 record awaiting a decision (0 flagged as likely maintenance RCTs); " \
           "1 decision so far." in _text(curator.get("/").text)
