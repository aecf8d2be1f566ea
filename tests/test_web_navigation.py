"""Moving between the queue and a record keeps where the curator was: the list (undecided or
all records) and its page. Over the real app and database (starlette TestClient)."""

from __future__ import annotations

import re
from typing import Any

import test_web
from test_web import add_records, as_role

from screening.queue import PAGE_SIZE

app = test_web.app
users = test_web.users


def _back(page: str) -> str:
    match = re.search(r'<p class="crumbs"><a href="([^"]*)">← Queue</a></p>', page)
    assert match, "no way back to the queue"
    return match.group(1).replace("&amp;", "&")


def test_back_to_the_queue_returns_to_the_list_and_page_the_record_was_opened_from(
        app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000000 + i, "title": f"Record {i}", "score": 1 - i / 1000}
                      for i in range(1, PAGE_SIZE + 6)])
    viewer = as_role(app, users, "viewer")
    second_page = viewer.get(f"/?show=all&offset={PAGE_SIZE}").text
    link = re.search(r'href="(/records/\d+\?rank=\d+[^"]*)"', second_page)
    assert link
    opened = link.group(1).replace("&amp;", "&")
    assert opened.endswith("&show=all")
    assert _back(viewer.get(opened).text) == f"/?show=all&offset={PAGE_SIZE}"
    # the first page of the undecided list, and a record opened from anywhere else: the queue
    first = re.search(r'href="(/records/\d+\?rank=1)"', viewer.get("/").text)
    assert first and _back(viewer.get(first.group(1)).text) == "/"
    assert _back(viewer.get("/records/90000001").text) == "/"
    assert _back(viewer.get(f"/records/90000001?rank={PAGE_SIZE + 1}").text) == \
        f"/?offset={PAGE_SIZE}"


def test_opening_a_forms_address_leads_to_its_page_not_an_error(
        app: Any, users: dict[str, str]) -> None:
    """/trials/5/estimates shows in the address bar after a refused form; opened again (address
    bar, bookmark, a login's next=), it leads to the page the form is on."""
    add_records(app, [{"pmid": 90000001, "title": "A record", "score": 0.9}])
    curator = as_role(app, users, "curator")
    for target, page in [("/records/90000001/decision", "/records/90000001"),
                         ("/records/90000001/fulltext/resolve", "/records/90000001"),
                         ("/account/password", "/account"), ("/logout", "/")]:
        response = curator.get(target, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == page, target
    landed = curator.get("/records/90000001/decision").text
    assert "That address receives a form and is no page of its own" in landed
    assert curator.post("/account", data={}).status_code == 405  # other methods: as before
    assert curator.get("/api/records/90000001/decision").status_code in (404, 405)


def test_the_queue_pager_says_which_records_are_shown(app: Any, users: dict[str, str]) -> None:
    add_records(app, [{"pmid": 90000000 + i, "title": f"Record {i}", "score": 1 - i / 1000}
                      for i in range(1, PAGE_SIZE + 6)])
    viewer = as_role(app, users, "viewer")
    first, second = viewer.get("/").text, viewer.get(f"/?offset={PAGE_SIZE}").text
    assert f'<span class="pager-position">Records 1–{PAGE_SIZE}</span>' in first
    assert (f'<span class="pager-position">Records {PAGE_SIZE + 1}–{PAGE_SIZE + 5}</span>'
            in second)
