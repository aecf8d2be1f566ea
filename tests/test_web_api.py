"""The JSON API under /api/: shapes, token auth, errors, and health when the database goes."""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import func, select
from test_web import db, login

from screening.web.auth import issue_api_token
from store.models import Decision, Estimate, PollRun, Record, Trial, User, utcnow

app = test_web.app
users = test_web.users
records = test_web.records


def _token(app: Any, email: str) -> dict[str, str]:
    with db(app) as session:
        user = session.exec(select(User).where(User.email == email)).one()
        token = issue_api_token(session, user, actor="test", days=90)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def verify_as_admin(api: TestClient, estimate_id: int) -> dict[str, Any]:
    """Verify an estimate through the API as the admin: a second person, since the tests'
    estimates are entered by curators (MMLR_VERIFY_SECOND_PERSON)."""
    response = api.post(f"/api/estimates/{estimate_id}/verify",
                        headers=_token(api.app, "admin@example.org"))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- health
def test_health_shape(app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    with db(app) as session:
        session.add(PollRun(query="q", status="completed", finished_at=utcnow()))
        session.commit()
    # a load balancer (no credentials) learns only that the service and database are up
    response = api.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["cache-control"] == "no-store"
    # a signed-in caller, by a token of any role or a browser session, gets the details too
    browser = TestClient(app, raise_server_exceptions=False)
    assert login(browser, users["viewer"]).status_code == 303
    for caller, headers in ((api, _token(app, users["viewer"])), (browser, {})):
        body = caller.get("/api/health", headers=headers).json()
        assert set(body) == {"status", "database", "version", "records", "last_poll"}
        assert (body["status"], body["database"], body["records"]) == ("ok", "ok", 5)
        assert body["version"] == app.version
        assert body["last_poll"].startswith(str(utcnow().year))


def test_health_answers_head_like_get(app: Any, api: TestClient, users: dict[str, str]) -> None:
    """Some health checkers ask with HEAD: it was a 405, which reads as "down". It is answered
    as GET is (status and headers), without the body."""
    public = api.head("/api/health")
    assert public.status_code == 200, public.text
    assert public.content == b"" and public.headers["cache-control"] == "no-store"
    assert public.headers["content-type"] == "application/json"
    assert api.head("/api/health", headers=_token(app, users["viewer"])).status_code == 200
    refused = api.head("/api/health", headers={"Authorization": "Bearer mmlr_unknown"})
    assert refused.status_code == 401 and refused.content == b""
    # only the health check: every other route still answers HEAD with 405
    assert api.head("/api/records", headers=_token(app, users["viewer"])).status_code == 405


def test_health_and_status_name_the_same_last_poll(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """"The last poll" is the last completed search of new records in both places: a re-fetch
    of known PMIDs finishing later, or a search still running or failed, does not make a
    review look up to date."""
    from datetime import timedelta

    from monitor.status import gather_status

    searched = utcnow() - timedelta(hours=5)
    with db(app) as session:
        session.add(PollRun(kind="crdt", query="q", status="completed", finished_at=searched))
        session.add(PollRun(kind="recheck", query="q", status="completed",
                            finished_at=searched + timedelta(hours=2)))
        session.add(PollRun(kind="crdt", query="q", status="failed",
                            finished_at=searched + timedelta(hours=3)))
        session.commit()
    body = api.get("/api/health", headers=_token(app, users["viewer"])).json()
    status = gather_status(app.state.ctx.settings).sections["poll"]
    assert body["last_poll"] == searched.isoformat()
    assert datetime.fromisoformat(status["last_completed_at"]) == searched.replace(tzinfo=UTC)


def test_health_refuses_a_bad_token_rather_than_answering_less(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """A script whose token lapsed hears so (401 in the API's error shape), instead of
    getting the public answer and missing the fields it reads without a word."""
    headers = _token(app, users["viewer"])
    with db(app) as session:
        viewer = session.exec(select(User).where(User.email == users["viewer"])).one()
        viewer.api_token_expires_at = datetime(2020, 1, 2, tzinfo=UTC)
        session.add(viewer)
        session.commit()
    expired = api.get("/api/health", headers=headers)
    assert expired.status_code == 401 and set(expired.json()) == {"error", "code"}
    assert expired.json()["error"].startswith("the API token expired on 2020-01-02")
    for value in ("Bearer mmlr_unknown", "Bearer not-a-token", "Basic abc"):
        refused = api.get("/api/health", headers={"Authorization": value})
        assert refused.status_code == 401, value
        assert refused.json()["code"] == "unauthenticated" and "version" not in refused.text
    assert api.get("/api/health").json() == {"status": "ok", "database": "ok"}


def test_the_browsers_icon_request_is_answered_without_a_404(app: Any, api: TestClient) -> None:
    # Chromium asks for /favicon.ico when it opens the JSON API: no 404 in its console.
    response = api.get("/favicon.ico")
    assert response.status_code == 204 and response.content == b""


def test_health_is_503_when_the_database_goes_away(app: Any, api: TestClient,
                                                   settings: Any, users: dict[str, str]) -> None:
    headers = _token(app, users["viewer"])
    assert api.get("/api/health", headers=headers).status_code == 200
    app.state.ctx.engine.dispose()
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite":
        # The file is replaced by something that is not a database.
        path = Path(url.database or "")
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.write_bytes(b"this is not a database" * 100)
    else:
        admin = create_engine(os.environ["MMLR_TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
        admin.dispose()
    response = api.get("/api/health", headers=headers)
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    assert api.get("/api/health").status_code == 503
    assert "Traceback" not in response.text and str(url.database) not in response.text


# ----------------------------------------------------------------------------- reads
def test_records_api_filters_and_shapes(app: Any, api: TestClient, users: dict[str, str],
                                        records: int) -> None:
    headers = _token(app, users["viewer"])
    with db(app) as session:  # where it sits in its journal, as PubMed prints it
        record = session.get(Record, 90000005)
        record.volume, record.issue, record.pages = "119", "13", "3003-15"
        session.add(record)
        session.commit()
    everything = api.get("/api/records", headers=headers).json()
    assert everything["total"] == 5 and everything["limit"] == 100
    first = everything["records"][0]
    assert first["pmid"] == 90000005 and first["score"] == pytest.approx(0.99)
    assert {"pmid", "title", "journal", "year", "score", "flagged", "audit_sample", "decision",
            "model_version_id", "pubmed_status", "deleted"} <= set(first)
    assert (first["volume"], first["issue"], first["pages"], first["elocation"]) == (
        "119", "13", "3003-15", None)
    undecided = api.get("/api/records?status=undecided", headers=headers).json()
    assert [r["pmid"] for r in undecided["records"]] == [90000002, 90000003, 90000001, 90000004]
    flagged = api.get("/api/records?status=undecided&flagged=true", headers=headers).json()
    assert [r["pmid"] for r in flagged["records"]] == [90000002]
    page = api.get("/api/records?limit=2&offset=1", headers=headers).json()
    assert [r["pmid"] for r in page["records"]] == [90000002, 90000003]
    deleted = api.get("/api/records?status=deleted", headers=headers).json()
    assert [r["pmid"] for r in deleted["records"]] == [90000005]
    for query, message in [
        ("status=gone", "status='gone' is not valid (use one of undecided, decided, include"),
        ("flagged=maybe", "flagged='maybe' is not a boolean (use true or false)"),
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=abc", "limit: Input should be a valid integer"),
    ]:
        response = api.get(f"/api/records?{query}", headers=headers)
        assert response.status_code == 400, query
        assert response.json()["error"].startswith(message), response.json()


def test_an_unknown_query_parameter_is_refused_not_ignored(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    """``/api/estimates?drug=lenalidomid`` answered every analysis and ``/api/records?flaged=
    true`` every record, as if the filter had been applied: a parameter the route does not
    take is a 400 naming it and the ones it takes."""
    viewer = _token(app, users["viewer"])
    cases = [
        ("/api/estimates?drug=lenalidomid",
         "unknown query parameter 'drug': GET /api/estimates takes no query parameters"),
        ("/api/records?status=undecided&flaged=true",
         "unknown query parameter 'flaged': GET /api/records takes status, flagged, q, limit, "
         "offset"),
        ("/api/records?flaged=true&ofset=2&flaged=false",
         "unknown query parameters 'flaged', 'ofset': GET /api/records takes status"),
        ("/api/searches?kinds=all", "unknown query parameter 'kinds': GET /api/searches takes "
                                    "kind, limit, offset"),
    ]
    for url, message in cases:
        response = api.get(url, headers=viewer)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["code"] == "invalid"
        assert response.json()["error"].startswith(message), response.json()
    # what a route takes is answered as before; the parameters of a dependency count too
    assert api.get("/api/records?status=undecided&flagged=true",
                   headers=viewer).status_code == 200
    admin = _token(app, users["admin"])
    assert api.get("/api/audit?actor=x&limit=5", headers=admin).status_code == 200
    audit = api.get("/api/audit?actr=x", headers=admin)
    assert audit.status_code == 400 and audit.json()["error"].startswith(
        "unknown query parameter 'actr': GET /api/audit takes ")
    assert "actor" in audit.json()["error"] and "offset" in audit.json()["error"]
    # writes too, once the caller may make them
    curator = _token(app, users["curator"])
    vote = api.post("/api/decisions?dry_run=1", headers=curator,
                    json={"pmid": 90000002, "decision": "include"})
    assert vote.status_code == 400 and vote.json()["error"].startswith(
        "unknown query parameter 'dry_run': POST /api/decisions takes no query parameters")
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0
    # who may not call the route learns nothing about its parameters
    assert api.get("/api/estimates?drug=x").status_code == 401
    assert api.get("/api/audit?actr=x", headers=viewer).status_code == 403
    # the health check, which anyone may call, answers whatever its address carries
    assert api.get("/api/health?probe=1").status_code == 200


def test_browser_session_can_read_the_api(app: Any, users: dict[str, str],
                                          records: int) -> None:
    viewer = test_web.as_role(app, users, "viewer")
    assert viewer.get("/api/records").status_code == 200


def test_estimates_and_trials_api(app: Any, api: TestClient, users: dict[str, str]) -> None:
    from monitor.bootstrap import load_seed_evidence
    from reports.pool import pool_all

    with db(app) as session:
        load_seed_evidence(session)
        session.commit()
    pool_all(app.state.ctx)
    headers = _token(app, users["viewer"])
    analyses = api.get("/api/estimates", headers=headers).json()["analyses"]
    pooled = [a for a in analyses if a["k"]]
    assert pooled
    for a in pooled:
        assert a["hr"] == pytest.approx(math.exp(a["estimate"]))
        assert a["hr_ci_low"] < a["hr"] < a["hr_ci_high"]
        assert a["forest_svg"] == f"/estimates/{a['id']}/forest.svg"
        assert {"i2", "tau2", "pi_low", "pi_high", "q", "q_p", "method", "ci_method"} <= set(a)
        # one trial: no prediction interval (its fit's PI is its CI), as in the summary
        several = a["k"] > 1
        assert (a["hr_pi_low"] is not None) is several and (a["pi_high"] is not None) is several
    assert {a["k"] for a in pooled} >= {1, 2}
    trials = api.get("/api/trials", headers=headers).json()["trials"]
    calgb = next(t for t in trials if t["name"] == "CALGB 100104")
    assert calgb["drug"] == "lenalidomide" and calgb["reports"] and calgb["estimates"]
    assert {"hr", "ci_low", "ci_high", "log_hr", "se", "verified", "endpoint"} <= set(
        calgb["estimates"][0])


def test_screening_health_as_data(app: Any, api: TestClient, users: dict[str, str],
                                  records: int) -> None:
    assert api.get("/api/screening/health").status_code == 401
    viewer = _token(app, users["viewer"])
    body = api.get("/api/screening/health", headers=viewer).json()
    assert (body["records"], body["screened"], body["records_remaining"]) == (4, 0, 4)
    assert body["stopping_p_value"] == 1.0 and body["assumptions"]
    curator = _token(app, users["curator"])
    for pmid in (90000002, 90000003):  # the flagged include, then the audit record
        response = api.post("/api/decisions", headers=curator, json={
            "pmid": pmid, "decision": "include" if pmid == 90000002 else "exclude"})
        assert response.status_code == 201, response.text
    body = api.get("/api/screening/health", headers=viewer).json()
    assert (body["screened"], body["includes_found"], body["audit_screened"]) == (2, 1, 1)
    # one include found: recall < 95% needs one more among the 2 unscreened + the last record
    assert body["stopping_p_value"] == pytest.approx(2 / 3, abs=1e-4)
    assert "the last record screened held 0 includes; 2 unscreened" in body["stopping_test"]
    assert "audit_p_value" in body and "Callaghan" in body["method"]


def test_bad_tokens_are_refused(app: Any, api: TestClient, users: dict[str, str]) -> None:
    for header, message in [
        ("Bearer mmlr_not-a-real-token", "the API token is not valid"),
        ("Bearer nonsense", "the API token is malformed"),
        ("Basic dXNlcjpwYXNz", "the Authorization header must be 'Bearer <token>'"),
    ]:
        response = api.get("/api/trials", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["error"].startswith(message)
        assert response.headers["www-authenticate"] == "Bearer"
    headers = _token(app, users["curator"])
    with db(app) as session:  # a deactivated user's token stops working
        user = session.exec(select(User).where(User.email == users["curator"])).one()
        user.active = False
        session.add(user)
        session.commit()
    assert api.get("/api/trials", headers=headers).status_code == 401


# ----------------------------------------------------------------------------- writes
def test_post_decision_with_a_curator_token(app: Any, api: TestClient, users: dict[str, str],
                                            records: int) -> None:
    headers = _token(app, users["curator"])
    response = api.post("/api/decisions", headers=headers, json={
        "pmid": 90000002, "decision": "exclude", "reason": "not maintenance", "rank_shown": 1})
    assert response.status_code == 201
    body = response.json()
    assert (body["pmid"], body["decision"], body["user"]) == (90000002, "exclude",
                                                              users["curator"])
    assert body["model_version_id"] == records and body["score_shown"] == pytest.approx(0.97)
    with db(app) as session:
        assert session.get(Record, 90000002).decision == "exclude"  # type: ignore[union-attr]
        assert session.exec(select(func.count()).select_from(Decision)).one() == 1


def test_post_decision_refusals(app: Any, api: TestClient, users: dict[str, str],
                                records: int) -> None:
    curator = _token(app, users["curator"])
    viewer = _token(app, users["viewer"])
    cases = [
        ({}, {"pmid": 90000002, "decision": "include"}, 401, "write endpoints need an API token"),
        (viewer, {"pmid": 90000002, "decision": "include"}, 403,
         "viewer@example.org is a viewer; this needs the curator role"),
        (curator, {"pmid": 90000002, "decision": "yes"}, 400, "decision 'yes' is not valid"),
        (curator, {"pmid": "abc", "decision": "include"}, 400, "'abc' is not a PMID"),
        (curator, {"decision": "include"}, 400, "pmid is required"),
        (curator, {"pmid": 1, "decision": "include"}, 404, "record PMID 1 is not in the database"),
        (curator, {"pmid": 90000002, "decision": "include", "reason": 5}, 400,
         "reason must be a string"),
        (curator, [1, 2], 400, "the request body must be a JSON object"),
    ]
    for headers, body, status, message in cases:
        response = api.post("/api/decisions", headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"].startswith(message)
    broken = api.post("/api/decisions", headers={**curator, "content-type": "application/json"},
                      content=b"{not json")
    assert broken.status_code == 400
    assert broken.json() == {"code": "invalid", "error": "the request body is not valid JSON"}
    # a logged-in browser session cannot write through the API (no CSRF exposure)
    browser = test_web.as_role(app, users, "curator")
    assert browser.post("/api/decisions", json={"pmid": 90000002,
                                                "decision": "include"}).status_code == 401
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Decision)).one() == 0


def test_post_estimate_converts_and_validates(app: Any, api: TestClient,
                                              users: dict[str, str]) -> None:
    with db(app) as session:
        session.add(Trial(name="API-TRIAL", drug="thalidomide", setting="non_transplant"))
        session.commit()
    headers = _token(app, users["curator"])
    response = api.post("/api/estimates", headers=headers, json={
        "trial": "API-TRIAL", "endpoint": "OS", "hr": 1.25, "ci_low": 1.0, "ci_high": 1.5625,
        "orientation": "control_vs_maint"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["hr"] == pytest.approx(0.8) and body["setting"] == "non_transplant"
    assert (body["ci_low"], body["ci_high"]) == (pytest.approx(0.64), pytest.approx(1.0))
    assert body["orientation_entered"] == "control_vs_maint" and body["verified"] is False
    assert body["warnings"] == []
    assert verify_as_admin(api, body["id"])["verified"] is True
    bad = api.post("/api/estimates", headers=headers, json={
        "trial": "API-TRIAL", "endpoint": "OS", "hr": 0, "ci_low": 0.5, "ci_high": 0.4})
    assert bad.status_code == 400
    assert bad.json()["error"] == ("hr: must be greater than 0; ci_low: 0.5 must be below "
                                   "the upper limit 0.4")
    # the same extraction sent again (a client retrying after a timeout) stores no copy
    repeat = api.post("/api/estimates", headers=headers, json={
        "trial": "API-TRIAL", "endpoint": "OS", "hr": 1.25, "ci_low": 1.0, "ci_high": 1.5625,
        "orientation": "control_vs_maint"})
    # (answered with the estimate as it stands: verified since)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["id"] == body["id"] and repeat.json()["already_recorded"] is True
    assert repeat.json()["verified"] is True
    missing = api.post("/api/estimates", headers=headers, json={"trial": "NOPE"})
    assert missing.status_code == 404 and "trial 'NOPE' does not exist" in missing.text
    with db(app) as session:
        assert session.exec(select(func.count()).select_from(Estimate)).one() == 1


# ----------------------------------------------------------------------------- retraining
@pytest.fixture
def retrain_app(settings: Any) -> Any:
    from screening.web.app import create_app

    application = create_app(settings.model_copy(update={"retrain_min_decisions": 2}))
    yield application
    application.state.retrainer.join(timeout=60)
    application.state.ctx.dispose()


def test_enough_decisions_retrain_in_the_background(retrain_app: Any) -> None:
    from sqlmodel import col

    from store.models import KeyValue, ModelVersion

    app = retrain_app
    test_web.make_user(app, "cur@example.org", "curator")
    model_id = test_web.add_model(app)
    test_web.add_records(app, [{"pmid": 100 + i, "title": f"record {i} myeloma maintenance",
                                "score": 0.1 * i, "score_model_version_id": model_id}
                               for i in range(1, 6)])
    api = TestClient(app)
    headers = _token(app, "cur@example.org")
    retrainer = app.state.retrainer
    assert api.post("/api/decisions", headers=headers,
                    json={"pmid": 101, "decision": "exclude"}).status_code == 201
    assert not retrainer.running and retrainer.runs == 0  # one new decision: below threshold
    assert api.post("/api/decisions", headers=headers,
                    json={"pmid": 105, "decision": "include"}).status_code == 201
    retrainer.join(timeout=120)
    assert retrainer.runs == 1 and retrainer.last_error is None, retrainer.last_error
    with db(app) as session:
        versions = session.exec(select(ModelVersion).order_by(col(ModelVersion.id))).all()
        assert len(versions) == 2 and versions[-1].active and versions[-1].n_decisions == 2
        progress = session.get(KeyValue, "screening.progress")
        assert progress is not None and progress.value["phase"] == "done"
    viewer_page = test_web.as_role(app, {"curator": "cur@example.org"}, "curator").get("/")
    assert "Classifier: done" in viewer_page.text
    # the progress time is shown like every other time on the pages, not as raw ISO text
    assert re.search(r"\(updated \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", viewer_page.text)
    assert progress.value["updated_at"] not in viewer_page.text


def test_no_background_run_starts_while_the_keyword_prior_cannot_be_replaced(
        retrain_app: Any) -> None:
    """With excludes only, every decision past the threshold started a run that trained and
    scored nothing ("finished: model v1 (keyword prior) / scored 0"), and the banner said the
    classifier was retraining: the decisions since the prior never stop counting."""
    from screening.service import PRIOR_NAME, screen
    from store.models import ModelVersion

    app = retrain_app
    test_web.make_user(app, "cur@example.org", "curator")
    test_web.add_records(app, [{"pmid": 300 + i, "title": (
        "Randomised trial of lenalidomide maintenance after transplant in myeloma" if i in (5, 6)
        else "Retrospective cohort of induction outcomes in myeloma")} for i in range(10)])
    assert screen(app.state.ctx).model_name == PRIOR_NAME
    api = TestClient(app)
    headers = _token(app, "cur@example.org")
    retrainer = app.state.retrainer
    curator = test_web.as_role(app, {"curator": "cur@example.org"}, "curator")
    for pmid in range(300, 305):
        assert api.post("/api/decisions", headers=headers,
                        json={"pmid": pmid, "decision": "exclude"}).status_code == 201
        assert not retrainer.running
        assert "Retraining the classifier" not in curator.get("/").text
    assert retrainer.runs == 0
    # one include: still fewer than 2; the second makes a classifier possible, and it runs
    for pmid in (305, 306):
        assert api.post("/api/decisions", headers=headers,
                        json={"pmid": pmid, "decision": "include"}).status_code == 201
    retrainer.join(timeout=120)
    assert retrainer.runs == 1 and retrainer.last_error is None, retrainer.last_error
    with db(app) as session:
        active = session.exec(select(ModelVersion).where(ModelVersion.active == True)  # noqa: E712
                              ).one()
        assert active.name != PRIOR_NAME and active.n_positive == 2


def test_retraining_never_blocks_and_runs_one_at_a_time(retrain_app: Any) -> None:
    import threading

    from screening.web.retrain import Retrainer

    app = retrain_app
    release, started = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow_screen(ctx: Any) -> None:  # stands in for a long training run
        calls.append(1)
        started.set()
        release.wait(30)

    app.state.retrainer = Retrainer(app.state.ctx, screen=slow_screen)
    test_web.make_user(app, "cur@example.org", "curator")
    test_web.add_records(app, [{"pmid": 200 + i, "title": f"r{i}"} for i in range(4)])
    api = TestClient(app)
    headers = _token(app, "cur@example.org")
    for pmid in (200, 201):
        assert api.post("/api/decisions", headers=headers,
                        json={"pmid": pmid, "decision": "exclude"}).status_code == 201
    assert started.wait(10)
    # the job is still running: requests are answered, and no second job starts
    for pmid in (202, 203):
        assert api.post("/api/decisions", headers=headers,
                        json={"pmid": pmid, "decision": "include"}).status_code == 201
    page = test_web.as_role(app, {"curator": "cur@example.org"}, "curator").get("/")
    assert "Retraining the classifier in the background" in page.text
    assert app.state.retrainer.running and calls == [1]
    release.set()
    app.state.retrainer.join(timeout=10)
    assert not app.state.retrainer.running and calls == [1]


def test_failed_retraining_is_reported_in_one_line(retrain_app: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from screening.web.retrain import Retrainer
    from store.errors import ScreeningError

    app = retrain_app
    test_web.make_user(app, "cur@example.org", "curator")
    curator = test_web.as_role(app, {"curator": "cur@example.org"}, "curator")
    for exc, shown in [
        (ScreeningError("the model artifact is unreadable", hint="retrain with --retrain"),
         "the model artifact is unreadable (retrain with --retrain)"),
        (KeyError("internal detail 42"),
         "screening failed unexpectedly; the details are in the server log"),
    ]:
        def failing(ctx: Any, exc: Exception = exc) -> None:
            raise exc

        retrainer = Retrainer(app.state.ctx, screen=failing)
        app.state.retrainer = retrainer
        assert retrainer.start()
        retrainer.join(timeout=10)
        page = curator.get("/").text
        assert f"Last retraining failed: {shown}" in page
        assert "internal detail 42" not in page
    assert "internal detail 42" in caplog.text  # the unexpected one is logged in full


def test_undecided_records_leave_out_the_previous_versions_reports(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """``status=undecided`` is the records waiting for a screener: the seed evidence's
    reports stored as records are not (``status=all`` still lists them); a curator's report
    of a new trial is."""
    from previous_reports import NEW_REPORT, ORDINARY, store_previous_reports

    with db(app) as session:
        pool = store_previous_reports(session)
    headers = _token(app, users["viewer"])
    undecided = api.get("/api/records?status=undecided&limit=1000", headers=headers).json()
    assert undecided["total"] == len(ORDINARY) + 1
    assert [r["pmid"] for r in undecided["records"]][:1] == [NEW_REPORT]
    assert not set(pool.previous) & {r["pmid"] for r in undecided["records"]}
    flagged = api.get("/api/records?status=undecided&flagged=true", headers=headers).json()
    assert [r["pmid"] for r in flagged["records"]] == [NEW_REPORT, *ORDINARY[:5]]
    everything = api.get("/api/records?status=all&limit=1000", headers=headers).json()
    assert set(pool.previous) <= {r["pmid"] for r in everything["records"]}
    assert everything["total"] == len(ORDINARY) + 1 + 3
    # the API's health agrees with the list
    health = api.get("/api/screening/health", headers=headers).json()
    assert health["records_remaining"] == undecided["total"]
