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
