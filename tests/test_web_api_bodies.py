"""What the JSON API does with request bodies a client gets slightly wrong (a misspelt key, an
id of the wrong type), and what its OpenAPI schema promises about them; over the real app and
database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import func, select
from test_web import db
from test_web_api import _token
from test_web_evidence import _estimates, _trial

from store.models import AuditLog, Decision, Estimate, Record, TrialReport

app = test_web.app
users = test_web.users
records = test_web.records


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _count(app: Any, model: Any) -> int:
    with db(app) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_misspelt_key_in_a_decision_is_refused_not_dropped(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    curator = _token(app, users["curator"])
    # "reasn": the vote would be saved without its reason, and the client never told
    response = api.post("/api/decisions", headers=curator, json={
        "pmid": 90000002, "decision": "exclude", "reasn": "not maintenance"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == ("unknown field 'reasn': a decision has pmid, decision, "
                                        "reason, rank_shown, model_version_shown, score_shown")
    assert _count(app, Decision) == 0
    with db(app) as session:
        assert session.get(Record, 90000002).decision is None  # type: ignore[union-attr]
    ok = api.post("/api/decisions", headers=curator, json={
        "pmid": 90000002, "decision": "exclude", "reason": "not maintenance", "rank_shown": 1})
    assert ok.status_code == 201, ok.text


def test_a_key_given_twice_is_refused_not_read_as_the_last(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    """JSON with a key twice was read as its last value without a word (the decision on
    90000002 was stored on 90000003); which one was meant cannot be known, so it is refused
    in every body the API reads, nested objects included."""
    curator = _token(app, users["curator"])
    json_headers = {**curator, "Content-Type": "application/json"}
    trial_id = _trial(app)
    entered = api.post("/api/estimates", headers=curator, json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    assert entered.status_code == 201, entered.text
    estimate_id = entered.json()["id"]
    before = (_count(app, Decision), _count(app, Estimate), _count(app, AuditLog))
    cases = [
        ("/api/decisions",
         '{"pmid": 90000002, "pmid": 90000003, "decision": "include"}', "pmid"),
        (f"/api/estimates/{estimate_id}/verify", '{"verified": false, "verified": true}',
         "verified"),
        (f"/api/estimates/{estimate_id}/correct",
         '{"hr": 0.55, "ci_low": 0.44, "ci_high": 0.69, "derivation_inputs": '
         '{"orientation": "maint_vs_control", "orientation": "control_vs_maint"}}',
         "orientation"),
        # a refused character in the value a parser would drop is no way past: refused too
        (f"/api/estimates/{estimate_id}/withdraw", '{"reason": "\\u202e", "reason": "b"}',
         "reason"),
    ]
    for path, body, key in cases:
        response = api.post(path, headers=json_headers, content=body.encode())
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {
            "code": "invalid",
            "error": f'the key "{key}" is given twice in the request body (send each field '
                     'once)'}, path
    patched = api.patch(f"/api/trials/{trial_id}", headers=json_headers,
                        content=b'{"name": "A", "name": "B"}')
    assert patched.status_code == 400 and '"name" is given twice' in patched.json()["error"]
    assert (_count(app, Decision), _count(app, Estimate), _count(app, AuditLog)) == before
    with db(app) as session:
        assert session.get(Record, 90000003).decision is None  # type: ignore[union-attr]
        assert session.get(Estimate, estimate_id).withdrawn_at is None  # type: ignore[union-attr]
    # the same key in an object and the object nested in it is no repeat
    nested = api.post(f"/api/estimates/{estimate_id}/correct", headers=json_headers, content=(
        b'{"hr": 0.55, "ci_low": 0.44, "ci_high": 0.69, "orientation": "maint_vs_control", '
        b'"derivation_inputs": {"orientation": "maint_vs_control"}}'))
    assert nested.status_code == 201, nested.text


def test_a_misspelt_key_in_a_verification_does_not_verify(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    trial_id = _trial(app)
    entered = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    assert entered.status_code == 201, entered.text
    estimate_id = entered.json()["id"]
    admin = _token(app, users["admin"])
    url = f"/api/estimates/{estimate_id}/verify"
    # {"verifed": false} meant "un-verify"; read as an empty body it verified the estimate
    response = api.post(url, headers=admin, json={"verifed": False})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("unknown field 'verifed'")
    [estimate] = _estimates(app)
    assert estimate.verified is False
    assert api.post(url, headers=admin, json={"verified": True}).status_code == 200
    # withdrawing takes "reason" alone
    withdraw = api.post(f"/api/estimates/{estimate_id}/withdraw", headers=admin,
                        json={"reason": "duplicate", "note": "entered twice"})
    assert withdraw.status_code == 400, withdraw.text
    assert withdraw.json()["error"].startswith("unknown field 'note'")
    [estimate] = _estimates(app)
    assert estimate.withdrawn_at is None


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/records/90000002/resolution", {"decision": "include", "reason": "r", "note": "n"},
     "note"),
    ("/api/records/90000002/fulltext", {"verdict": "eligible", "comment": "c"}, "comment"),
    ("/api/records/90000002/fulltext/resolve", {"verdict": "eligible", "notes": "n"}, "notes"),
])
def test_resolutions_and_fulltext_refuse_unknown_keys(
        app: Any, api: TestClient, users: dict[str, str], records: int, path: str,
        body: dict[str, Any], field: str) -> None:
    admin = _token(app, users["admin"])
    audits = _count(app, AuditLog)
    response = api.post(path, headers=admin, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"unknown field {field!r}")
    assert _count(app, AuditLog) == audits


@pytest.mark.parametrize("trial_id", [True, 1.7, "1.0", "1" * 40, 2**63, [1]])
def test_a_trial_id_that_is_no_id_is_refused(app: Any, api: TestClient,
                                             users: dict[str, str], trial_id: Any) -> None:
    assert _trial(app) == 1  # so true (== 1 to Python) or 1.7 (int() 1) would find it
    response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(
        f"trial_id {json.dumps(trial_id)} is not a trial's id")
    assert _count(app, Estimate) == 0


@pytest.mark.parametrize("report_id", [True, 1.0, "1.0", "1e0", " +1", 0, "0", 2**31, [1]])
def test_a_report_id_that_is_no_id_is_refused(app: Any, api: TestClient,
                                              users: dict[str, str], report_id: Any) -> None:
    """``"1.0"`` and ``1.0`` were read as report 1 (``true`` was "must be a number"): an id is
    a whole number or its digits, nothing that merely reads as one."""
    trial_id = _trial(app)
    with db(app) as session:
        assert session.exec(select(TrialReport.id).where(
            TrialReport.trial_id == trial_id)).all() == [1]
    response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625", "report_id": report_id})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (
        f"report_id: must be a report's id (a whole number from 1), not {json.dumps(report_id)}")
    assert _count(app, Estimate) == 0


def test_a_report_id_as_a_number_or_digits_finds_the_report(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    for report_id, cut in ((1, "2017-01-01"), ("1", "2016-01-01"), (" 1 ", "2015-01-01")):
        response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
            "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
            "ci_high": "0.625", "report_id": report_id, "data_cut": cut})
        assert response.status_code == 201, response.text
        assert response.json()["report_id"] == 1


@pytest.mark.parametrize(("field", "value", "message"), [
    ("pmid", True, "true is not a PMID"),  # it said "True", Python's word
    ("pmid", 90000002.0, "90000002.0 is not a PMID"),
    ("pmid", "90000002.0", "'90000002.0' is not a PMID"),
    ("rank_shown", True, "rank_shown true is not a positive whole number"),
    ("rank_shown", "2.0", "rank_shown '2.0' is not a positive whole number"),
])
def test_a_pmid_or_rank_that_is_no_whole_number_is_refused_as_sent(
        app: Any, api: TestClient, users: dict[str, str], records: int, field: str,
        value: Any, message: str) -> None:
    body = {"pmid": 90000002, "decision": "include", field: value}
    response = api.post("/api/decisions", headers=_token(app, users["curator"]), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(message), response.json()
    assert _count(app, Decision) == 0


def test_a_trial_id_as_digits_still_finds_the_trial(app: Any, api: TestClient,
                                                    users: dict[str, str]) -> None:
    trial_id = _trial(app)
    response = api.post("/api/estimates", headers=_token(app, users["curator"]), json={
        "trial_id": str(trial_id), "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    assert response.status_code == 201, response.text
    assert response.json()["trial_id"] == trial_id


# ----------------------------------------------------------------------------- OpenAPI
def _api_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in schema["paths"].items()
            if path.startswith("/api/") for method, op in ops.items()]


def test_the_schema_promises_the_errors_and_bodies_the_api_really_has(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    viewer = _token(app, users["viewer"])
    schema = api.get("/api/openapi.json", headers=viewer).json()
    # the schema is the API's: the pages and forms (HTML, cookie and CSRF token) are not in it
    assert all(path.startswith("/api/") for path in schema["paths"]), sorted(schema["paths"])
    # no route anywhere promises FastAPI's 422 {"detail": [...]}, nor describes its body
    assert '"422"' not in json.dumps(schema) and "HTTPValidationError" not in json.dumps(schema)
    operations = {(m, p): op for m, p, op in _api_operations(schema)}
    assert ("GET", "/api/network") in operations
    assert len(operations) >= 24, sorted(operations)
    error = schema["components"]["schemas"]["ApiError"]
    assert error["required"] == ["error", "code"]
    assert set(error["properties"]["code"]["enum"]) >= {"invalid", "unauthenticated",
                                                        "forbidden", "not_found", "conflict"}
    # what a malformed parameter really gets: a 400 in that shape, never a 422 {"detail"}
    wrong = api.get("/api/records?limit=0", headers=viewer)
    assert wrong.status_code == 400 and set(wrong.json()) == {"error", "code"}
    for (method, path), op in operations.items():
        responses = op["responses"]
        assert "422" not in responses, (method, path)
        if path == "/api/health":
            continue
        for status in ("400", "401"):
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ApiError"), (method, path, status)
        if method != "GET":
            assert "403" in responses, (method, path)
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body["type"] == "object", (method, path)
    # a repeated judgement is a 200, a new one a 201; a stale trial edit a 412
    for path in ("/api/decisions", "/api/records/{pmid}/resolution",
                 "/api/records/{pmid}/fulltext", "/api/records/{pmid}/fulltext/resolve"):
        assert {"200", "201"} <= set(operations[("POST", path)]["responses"]), path
    # and a write whose repeat stores nothing answers 200, which the schema declares too
    for path in ("/api/trials/{trial_id}/risk-of-bias", "/api/estimates/baseline",
                 "/api/estimates/{estimate_id}/correct"):
        assert {"200", "201"} <= set(operations[("POST", path)]["responses"]), path
    patch = operations[("PATCH", "/api/trials/{trial_id}")]
    assert "412" in patch["responses"] and "ETag" in patch["responses"]["200"]["headers"]
    assert [p["name"] for p in patch["parameters"] if p["in"] == "header"] == ["If-Match"]
    assert "ETag" in operations[("GET", "/api/trials/{trial_id}")]["responses"]["200"][
        "headers"]
    decision = operations[("POST", "/api/decisions")]["requestBody"]["content"][
        "application/json"]["schema"]
    assert decision["required"] == ["pmid", "decision"]
    assert decision["properties"]["decision"]["enum"] == ["include", "exclude", "maybe"]


def test_every_body_the_schema_closes_refuses_another_key(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    admin = _token(app, users["admin"])
    trial_id = _trial(app)
    estimate = api.post("/api/estimates", headers=admin, json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    assert estimate.status_code == 201, estimate.text
    schema = api.get("/api/openapi.json", headers=admin).json()
    ids = {"pmid": "90000002", "estimate_id": str(estimate.json()["id"]),
           "trial_id": str(trial_id)}
    closed = 0
    for method, path, op in _api_operations(schema):
        body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get(
            "schema", {})
        if body.get("additionalProperties") is not False:
            continue
        closed += 1
        url = path.format(**ids)
        response = api.request(method, url, headers=admin, json={"no_such_key": 1})
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"].startswith("unknown field 'no_such_key'"), url
    assert closed >= 6  # decisions, resolution, two full-text, verify, withdraw, trial edit


def test_every_error_carries_the_code_of_its_status(
        app: Any, api: TestClient, users: dict[str, str], records: int) -> None:
    curator = _token(app, users["curator"])
    viewer = _token(app, users["viewer"])
    vote = {"pmid": 90000002, "decision": "include"}
    trial_id = _trial(app)
    entered = api.post("/api/estimates", headers=curator, json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
        "ci_high": "0.625"})
    withdraw = f"/api/estimates/{entered.json()['id']}/withdraw"
    assert api.post(withdraw, headers=curator, json={"reason": "duplicate"}).status_code == 200
    cases = [
        (api.get("/api/records?limit=0", headers=viewer), 400, "invalid"),
        (api.post("/api/decisions", headers=curator, content=b"{nope"), 400, "invalid"),
        (api.post("/api/decisions", json=vote), 401, "unauthenticated"),
        (api.get("/api/records", headers={"Authorization": "Bearer nope"}), 401,
         "unauthenticated"),
        (api.post("/api/decisions", headers=viewer, json=vote), 403, "forbidden"),
        (api.get("/api/records/1/decisions", headers=viewer), 404, "not_found"),
        (api.get("/api/nothing", headers=viewer), 404, "not_found"),
        (api.delete("/api/records", headers=viewer), 405, "method_not_allowed"),
        (api.post(withdraw, headers=curator, json={"reason": "again"}), 409, "conflict"),
        (api.post("/api/estimates/baseline", headers=curator, json={"analysis": 5}), 400,
         "invalid"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (response.request.url, response.text)
        body = response.json()
        assert body["code"] == code and body["error"], (response.request.url, body)


def test_a_misspelt_key_in_an_estimate_or_correction_is_refused(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    curator = _token(app, users["curator"])
    trial_id = _trial(app)
    numbers = {"trial_id": trial_id, "endpoint": "PFS", "hr": "0.5", "ci_low": "0.4",
               "ci_high": "0.625"}
    # "data_cut_lable": saved without the label, and without a word
    typo = api.post("/api/estimates", headers=curator,
                    json={**numbers, "data_cut_lable": "median follow-up 30 months"})
    assert typo.status_code == 400, typo.text
    assert typo.json()["error"].startswith("unknown field 'data_cut_lable'")
    assert _count(app, Estimate) == 0
    entered = api.post("/api/estimates", headers=curator,
                       json={**numbers, "data_cut_label": "median follow-up 30 months"})
    assert entered.status_code == 201, entered.text
    old = entered.json()
    # the estimate's own JSON (and its warnings) may come back with new numbers ...
    corrected = api.post(f"/api/estimates/{old['id']}/correct", headers=curator,
                         json={**old, "hr": 0.55, "ci_low": 0.44, "ci_high": 0.69,
                               "correction_note": "typo in the HR"})
    assert corrected.status_code == 201, corrected.text
    # ... but not with a key no estimate has
    refused = api.post(f"/api/estimates/{corrected.json()['id']}/correct", headers=curator,
                       json={"hr": 0.5, "ci_low": 0.4, "ci_high": 0.625, "corection_note": "x"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith("unknown field 'corection_note'")
    assert _count(app, Estimate) == 2
