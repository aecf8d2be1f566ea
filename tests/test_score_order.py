"""One order of records by score everywhere (``store.models.BY_SCORE``): the queue, a search,
``GET /api/records`` (in pages) and the digest's likely trials list tied and unscored records
alike — highest score first, unscored last on both engines, a tie to the newest PMID. Until
2026-12-02 the API and the digest broke ties by the oldest PMID, and the digest put unscored
records first on PostgreSQL and last on SQLite."""

from __future__ import annotations

from typing import Any

import test_web
from test_web import add_records, api_as, db

from reports.digest import _flagged_records
from screening.queue import queue
from screening.record_search import search

app = test_web.app
users = test_web.users

# Inserted in neither order, so neither insertion nor the primary key can pass for the rule.
ROWS = [
    {"pmid": 90000031, "score": 0.5, "flagged": True},
    {"pmid": 90000035, "score": None, "flagged": True},
    {"pmid": 90000033, "score": 0.5, "flagged": True},
    {"pmid": 90000030, "score": 0.9, "flagged": True},
    {"pmid": 90000034, "score": 0.5, "flagged": False},
    {"pmid": 90000032, "score": None, "flagged": False},
    {"pmid": 90000036, "score": 0.1, "flagged": True},
]
ORDER = [90000030, 90000034, 90000033, 90000031, 90000036, 90000035, 90000032]


def test_every_list_by_score_breaks_ties_the_same_way(app: Any, users: dict[str, str]) -> None:
    add_records(app, [{**row, "title": f"Lenalidomide maintenance {row['pmid']}"}
                      for row in ROWS])
    with db(app) as session:
        assert [item.pmid for item in queue(session, limit=50)] == ORDER
        assert [r.pmid for r in search(session, "lenalidomide").records] == ORDER
        assert [r.pmid for r in _flagged_records(session)] == [
            p for p in ORDER if p not in (90000034, 90000032)]
    api = api_as(app, users, "viewer")
    assert [r["pmid"] for r in api.get("/api/records").json()["records"]] == ORDER
    # paged across the tie and into the unscored records: no record twice, none missed
    paged = [r["pmid"] for offset in range(0, 7, 2)
             for r in api.get(f"/api/records?limit=2&offset={offset}").json()["records"]]
    assert paged == ORDER
