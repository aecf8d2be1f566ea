"""The one-click flow ("Include / Exclude / Maybe, next"): which record it opens next. Real
app and database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from test_web import add_model, add_records, as_role, csrf_from, make_user

from screening.queue import AUDIT_EVERY
from screening.web.app import create_app

users = test_web.users
MAIN = list(range(91000001, 91000031))  # 30 records the model ranks, highest score first
AUDIT = [91000101, 91000102, 91000103, 91000104]  # low-score records of the audit sample


@pytest.fixture
def settings(settings: Any, request: pytest.FixtureRequest) -> Any:
    """No background retraining: the queue keeps the order these tests gave it (and the
    settings a test names by parametrizing this fixture)."""
    return settings.model_copy(update={"retrain_min_decisions": 10_000,
                                       **getattr(request, "param", {})})


@pytest.fixture
def app(settings: Any) -> Iterator[Any]:
    application = create_app(settings)
    yield application
    application.state.ctx.dispose()


@pytest.fixture
def queue_records(app: Any) -> None:
    model_id = add_model(app)
    add_records(app, [{"pmid": p, "title": f"Main record {i}", "score": 0.9 - i / 100,
                       "score_model_version_id": model_id} for i, p in enumerate(MAIN)])
    add_records(app, [{"pmid": p, "title": f"Audit record {i}", "score": 0.01 + i / 1000,
                       "audit_sample": True, "score_model_version_id": model_id}
                      for i, p in enumerate(AUDIT)])


def _next_flow(client: TestClient, pmid: int, n: int) -> tuple[list[int], int]:
    """Decide ``n`` records with "Exclude, next" from ``pmid`` on: the records decided and the
    one the last click opened."""
    decided = []
    for _ in range(n):
        token = csrf_from(client.get(f"/records/{pmid}").text)
        response = client.post(f"/records/{pmid}/decision", follow_redirects=False,
                               data={"quick": "exclude", "csrf_token": token})
        assert response.status_code == 303
        decided.append(pmid)
        found = re.match(r"/records/(\d+)\?rank=\d+$", response.headers["location"])
        assert found, response.headers["location"]
        pmid = int(found.group(1))
    return decided, pmid


def test_the_next_flow_serves_an_audit_record_after_every_nine_others(
        app: Any, users: dict[str, str], queue_records: None) -> None:
    """The flow opened the top of the queue, which holds a main record while any remains: after
    150 decisions no audit record had been decided, and the recall estimate had nothing."""
    curator = as_role(app, users, "curator")
    decided, _ = _next_flow(curator, MAIN[0], 2 * AUDIT_EVERY)
    audited = [i for i, p in enumerate(decided) if p in AUDIT]
    assert audited == [AUDIT_EVERY - 1, 2 * AUDIT_EVERY - 1]
    assert [p for p in decided if p not in AUDIT] == MAIN[:2 * AUDIT_EVERY - 2]
    health = curator.get("/api/screening/health").json()
    assert health["audit_screened"] == 2


def test_the_count_is_each_persons_own_and_survives_a_restart(
        app: Any, settings: Any, users: dict[str, str], queue_records: None) -> None:
    curator = as_role(app, users, "curator")
    decided, _ = _next_flow(curator, MAIN[0], 5)
    # a colleague's decisions do not bring the first curator's audit record nearer
    make_user(app, "curator2@example.org", "curator")
    colleague = as_role(app, {"curator": "curator2@example.org"}, "curator")
    theirs, _ = _next_flow(colleague, MAIN[5], 3)
    assert not set(theirs) & set(AUDIT)
    app.state.ctx.dispose()
    restarted = create_app(settings)  # a new process: the count is read from the database
    try:
        again = as_role(restarted, users, "curator")
        more, opened = _next_flow(again, MAIN[8], AUDIT_EVERY - 1 - len(decided) - 1)
        assert not set(more) & set(AUDIT)
        token = csrf_from(again.get(f"/records/{opened}").text)
        ninth = again.post(f"/records/{opened}/decision", follow_redirects=False,
                           data={"quick": "include", "csrf_token": token})
        assert int(re.findall(r"/records/(\d+)", ninth.headers["location"])[0]) in AUDIT
    finally:
        restarted.state.ctx.dispose()


@pytest.mark.parametrize("settings", [{"screeners_per_record": 2}], indirect=True)
def test_under_dual_screening_the_audit_record_served_is_from_your_own_queue(
        app: Any, users: dict[str, str], queue_records: None) -> None:
    curator = as_role(app, users, "curator")
    # a vote on an audit record by hand: the count starts again, and that record has left
    # this person's queue
    token = csrf_from(curator.get(f"/records/{AUDIT[-1]}").text)
    assert curator.post(f"/records/{AUDIT[-1]}/decision", follow_redirects=False, data={
        "decision": "exclude", "csrf_token": token}).status_code == 303
    decided, _ = _next_flow(curator, MAIN[0], AUDIT_EVERY)
    assert [p in AUDIT for p in decided] == [False] * (AUDIT_EVERY - 1) + [True]
    assert decided[-1] != AUDIT[-1]


def test_audit_records_are_served_in_the_order_of_their_draw_not_by_score(
        app: Any, users: dict[str, str], queue_records: None) -> None:
    """Served by score, a partly screened audit sample leant toward its higher scores, while
    the recall estimate takes it as a random sample."""
    from screening.draw import audit_draw
    from screening.queue import queue

    by_draw = sorted(AUDIT, key=audit_draw)
    by_score = sorted(AUDIT, reverse=True)  # the scores rise with the PMID
    assert by_draw != by_score  # (the test means something)
    with app.state.ctx.sessions() as session:
        listed = [i.pmid for i in queue(session, limit=100) if i.audit_sample]
        assert [i.rank for i in queue(session, limit=100) if i.audit_sample][:3] == [
            AUDIT_EVERY, 2 * AUDIT_EVERY, 3 * AUDIT_EVERY]
    assert listed == by_draw
    decided, _ = _next_flow(as_role(app, users, "curator"), MAIN[0], AUDIT_EVERY)
    assert decided[-1] == by_draw[0]
