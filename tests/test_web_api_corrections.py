"""Withdrawing and correcting estimates through the JSON API (Bearer tokens), over the real app
and database (SQLite, or PostgreSQL with MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, select
from test_web import db
from test_web_api import _token, verify_as_admin
from test_web_evidence import _estimates, _trial

from store.models import AuditLog, Estimate, PooledResult, TrialReport, User

app = test_web.app
users = test_web.users

LEN_PFS = "lenalidomide/PFS/post_asct"


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _audits(app: Any, action: str) -> list[AuditLog]:
    with db(app) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.action == action)
                                 .order_by(col(AuditLog.id))))


def _post(api: TestClient, headers: dict[str, str], trial_id: int, hr: str = "0.50",
          lo: str = "0.40", hi: str = "0.625", **extra: Any) -> dict[str, Any]:
    """Enter an estimate with ``headers`` (a curator), verified by the admin."""
    response = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "hr": hr, "ci_low": lo, "ci_high": hi,
        **extra})
    assert response.status_code == 201, response.text
    return {**response.json(), **verify_as_admin(api, response.json()["id"])}


def _state(app: Any) -> list[tuple[Any, ...]]:
    """Everything a refused request must leave alone: every estimate's numbers and status."""
    return [(e.id, e.hr, e.ci_low, e.ci_high, e.verified, e.withdrawn_at, e.withdrawn_reason,
             e.supersedes_id) for e in _estimates(app)]


def _user_id(app: Any, email: str) -> int:
    with db(app) as session:
        return session.exec(select(User.id).where(User.email == email)).one()  # type: ignore[return-value]


# ----------------------------------------------------------------------------- withdraw
def test_api_withdraw_takes_the_estimate_out_of_the_analysis(app: Any, api: TestClient,
                                                             users: dict[str, str]) -> None:
    from reports.pool import pool_all
    from reports.selection import latest_results

    ctx = app.state.ctx
    headers = _token(app, users["curator"])
    a = _post(api, headers, _trial(app, name="TRIAL-A"))
    b = _post(api, headers, _trial(app, name="TRIAL-B"), "0.80", "0.64", "1.00")

    def snapshot() -> PooledResult:
        with db(app) as session:
            return next(r for r in latest_results(session) if r.analysis_key == LEN_PFS)

    pool_all(ctx)
    before = snapshot()
    assert {row["estimate_id"] for row in before.inputs} == {a["id"], b["id"]}

    response = api.post(f"/api/estimates/{a['id']}/withdraw", headers=headers,
                        json={"reason": "  duplicate of the <b>2012</b> cut "})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == a["id"] and body["withdrawn_at"]
    assert body["withdrawn_reason"] == "duplicate of the <b>2012</b> cut"
    assert body["withdrawn_by"] == _user_id(app, users["curator"])
    assert body["hr"] == pytest.approx(0.5)  # the numbers stay as they were
    (row,) = _audits(app, "estimate.withdraw")
    assert row.object_id == str(a["id"]) and row.actor == users["curator"]
    assert row.details["reason"] == "duplicate of the <b>2012</b> cut"

    pool_all(ctx)
    after = snapshot()
    assert after.id != before.id
    assert [row["estimate_id"] for row in after.inputs] == [b["id"]]
    assert {"estimate_id": a["id"], "trial": "TRIAL-A", "reason": "withdrawn"} in \
        after.result["dropped"]

    listed = {e["id"]: e for t in api.get("/api/trials", headers=headers).json()["trials"]
              for e in t["estimates"]}
    assert listed[a["id"]]["withdrawn_reason"] == "duplicate of the <b>2012</b> cut"
    assert listed[a["id"]]["withdrawn_at"] == body["withdrawn_at"]
    assert listed[b["id"]]["withdrawn_at"] is None


def test_api_withdraw_refusals_change_nothing(app: Any, api: TestClient,
                                              users: dict[str, str]) -> None:
    curator = _token(app, users["curator"])
    viewer = _token(app, users["viewer"])
    estimate = _post(api, curator, _trial(app))
    url = f"/api/estimates/{estimate['id']}/withdraw"
    before = _state(app)
    browser = test_web.as_role(app, users, "curator")  # a cookie never writes through the API
    cases: list[tuple[TestClient, dict[str, str], str, Any, int, str]] = [
        (api, curator, url, {"reason": "   "}, 400,
         "reason: is required: say why the estimate is withdrawn"),
        (api, curator, url, {}, 400, "reason: is required"),
        (api, curator, url, {"reason": 5}, 400, "reason must be a string"),
        (api, curator, url, {"reason": "x" * 1001}, 400,
         "reason: is longer than 1000 characters"),
        (api, curator, url, ["not", "an", "object"], 400,
         "the request body must be a JSON object"),
        (api, curator, "/api/estimates/999999/withdraw", {"reason": "x"}, 404,
         "estimate 999999 does not exist"),
        (api, curator, "/api/estimates/abc/withdraw", {"reason": "x"}, 400, "estimate_id:"),
        (api, viewer, url, {"reason": "x"}, 403,
         "viewer@example.org is a viewer; this needs the curator role"),
        (api, {}, url, {"reason": "x"}, 401, "write endpoints need an API token"),
        (api, {"Authorization": "Bearer mmlr_forged"}, url, {"reason": "x"}, 401,
         "the API token is not valid"),
        (browser, {}, url, {"reason": "x"}, 401, "write endpoints need an API token"),
    ]
    for client, headers, path, body, status, message in cases:
        response = client.post(path, headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"].startswith(message), response.json()
    assert _state(app) == before
    assert _audits(app, "estimate.withdraw") == []


def test_api_withdraw_for_another_reason_is_a_conflict(app: Any, api: TestClient,
                                                       users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    estimate = _post(api, headers, _trial(app))
    url = f"/api/estimates/{estimate['id']}/withdraw"
    assert api.post(url, headers=headers, json={"reason": "wrong arm"}).status_code == 200
    again = api.post(url, headers=headers, json={"reason": "again"})
    assert again.status_code == 409
    assert again.json()["error"].startswith(
        f"estimate {estimate['id']} was already withdrawn (wrong arm)")
    (after,) = _estimates(app)
    assert after.withdrawn_reason == "wrong arm"
    assert len(_audits(app, "estimate.withdraw")) == 1


def test_api_the_same_withdrawal_sent_again_is_already_recorded(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """A withdrawal retried after a lost answer was told 409 "already withdrawn": what it asked
    for is so, so it is answered 200 with the estimate and ``already_recorded: true`` (the
    same reason, or none), nothing done twice. Another reason, or an estimate a correction
    withdrew (its numbers are still pooled, as the correction's), stays a 409."""
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    estimate = _post(api, headers, trial_id)
    url = f"/api/estimates/{estimate['id']}/withdraw"
    first = api.post(url, headers=headers, json={"reason": "wrong arm"})
    assert first.status_code == 200 and first.json()["already_recorded"] is False
    for body in ({"reason": "wrong arm"}, {"reason": "  wrong   arm "}, {}, {"reason": None},
                 {"reason": " "}):
        again = api.post(url, headers=headers, json=body)
        assert again.status_code == 200, (body, again.text)
        assert again.json() == {**first.json(), "already_recorded": True}
    (after,) = _estimates(app)
    assert after.withdrawn_reason == "wrong arm"
    assert len(_audits(app, "estimate.withdraw")) == 1

    corrected = _post(api, headers, trial_id, data_cut="2017-02-28")
    fix = api.post(f"/api/estimates/{corrected['id']}/correct", headers=headers,
                   json={"hr": 0.55, "ci_low": 0.45, "ci_high": 0.67})
    assert fix.status_code == 201, fix.text
    for body in ({}, {"reason": f"corrected by estimate {fix.json()['id']}"}):
        refused = api.post(f"/api/estimates/{corrected['id']}/withdraw", headers=headers,
                           json=body)
        assert refused.status_code == 409, (body, refused.text)
        assert refused.json()["error"].startswith(
            f"estimate {corrected['id']} was already withdrawn (corrected by estimate")


# ----------------------------------------------------------------------------- correct
def test_api_correct_supersedes_and_withdraws_the_old(app: Any, api: TestClient,
                                                      users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    old = _post(api, headers, trial_id, data_cut_label="median follow-up 34 months")
    response = api.post(f"/api/estimates/{old['id']}/correct", headers=headers, json={
        "endpoint": "PFS", "hr": 0.55, "ci_low": 0.45, "ci_high": 0.67, "verified": True,
        "data_cut_label": "median follow-up 34 months", "correction_note": "CI misread"})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["supersedes_id"] == old["id"] and new["trial_id"] == trial_id
    assert new["hr"] == pytest.approx(0.55) and new["ci_high"] == pytest.approx(0.67)
    assert new["verified"] is False  # a correction is checked again, whatever was sent
    assert new["withdrawn_at"] is None and new["warnings"] == []
    old_after, stored = _estimates(app)
    assert stored.id == new["id"] and stored.supersedes_id == old["id"]
    assert old_after.withdrawn_at is not None
    assert old_after.withdrawn_reason == f"corrected by estimate {new['id']}: CI misread"
    assert old_after.hr == pytest.approx(0.5)  # never changed in place
    (correct,) = _audits(app, "estimate.correct")
    assert correct.actor == users["curator"] and correct.details["supersedes"] == old["id"]
    assert correct.details["new"]["hr"] == pytest.approx(0.55)

    # the client may send a stored estimate's JSON back with new numbers (it names the trial)
    again = api.post(f"/api/estimates/{new['id']}/correct", headers=headers,
                     json={**new, "hr": 0.6, "ci_low": 0.5, "ci_high": 0.72})
    assert again.status_code == 201, again.text
    third = again.json()
    assert third["supersedes_id"] == new["id"] and third["hr"] == pytest.approx(0.6)
    with db(app) as session:
        corrected = session.get(Estimate, new["id"])
        assert corrected is not None
        assert corrected.withdrawn_reason == f"corrected by estimate {third['id']}"


def test_api_correct_of_the_number_alone_keeps_the_data_cut(app: Any, api: TestClient,
                                                           users: dict[str, str]) -> None:
    """A correction that sends only the number keeps what the estimate is (report, data cut,
    arm sizes, notes…), as the Correct form does: an undated copy would count as the trial's
    oldest cut, and the analysis would go back to the earlier cut."""
    from reports.pool import pool_all
    from reports.selection import latest_results

    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    with db(app) as session:
        (report,) = session.exec(select(TrialReport).where(TrialReport.trial_id == trial_id))
        report_id = report.id
    _post(api, headers, trial_id, "0.48", "0.36", "0.64", data_cut="2012-01-31",
          data_cut_label="median follow-up 34 months")
    latest = _post(api, headers, trial_id, "0.57", "0.46", "0.71", data_cut="2017-02-28",
                   data_cut_label="median follow-up 91 months", report_id=report_id,
                   n_maintenance=231, n_control=229, events=300,
                   notes="Müller's table 2, ≥ 65 years")
    response = api.post(f"/api/estimates/{latest['id']}/correct", headers=headers, json={
        "endpoint": "PFS", "hr": 0.58, "ci_low": 0.47, "ci_high": 0.72})
    assert response.status_code == 201, response.text
    new = response.json()
    kept = ("report_id", "endpoint", "setting", "comparison", "data_cut", "data_cut_label",
            "n_maintenance", "n_control", "events")
    assert {k: new[k] for k in kept} == {k: latest[k] for k in kept}
    assert new["data_cut"] == "2017-02-28" and new["report_id"] == report_id
    with db(app) as session:
        stored = session.get(Estimate, new["id"])
        assert stored is not None and stored.notes == "Müller's table 2, ≥ 65 years"
    verify_as_admin(api, new["id"])

    pool_all(app.state.ctx)
    with db(app) as session:
        row = next(r for r in latest_results(session) if r.analysis_key == LEN_PFS)
    assert [i["estimate_id"] for i in row.inputs] == [new["id"]]  # the corrected latest cut

    # a field sent is the client's, null included: the label may be cleared on purpose
    again = api.post(f"/api/estimates/{new['id']}/correct", headers=headers, json={
        "endpoint": "PFS", "hr": 0.58, "ci_low": 0.47, "ci_high": 0.72,
        "data_cut_label": None})
    assert again.status_code == 201, again.text
    assert again.json()["data_cut_label"] is None
    assert again.json()["data_cut"] == "2017-02-28"


def test_api_correct_refusals_change_nothing(app: Any, api: TestClient,
                                             users: dict[str, str]) -> None:
    curator = _token(app, users["curator"])
    viewer = _token(app, users["viewer"])
    _trial(app, name="OTHER")
    old = _post(api, curator, _trial(app))
    url = f"/api/estimates/{old['id']}/correct"
    fix = {"endpoint": "PFS", "hr": 0.55, "ci_low": 0.45, "ci_high": 0.67}
    before = _state(app)
    cases: list[tuple[dict[str, str], str, Any, int, str]] = [
        (curator, url, {**fix, "hr": 0.9, "ci_low": 0.4, "ci_high": 0.6}, 400,
         "hr: 0.9 is not inside its confidence interval 0.4–0.6"),
        (curator, url, {**fix, "ci_low": 0.7}, 400,
         "ci_low: 0.7 must be below the upper limit 0.67"),
        (curator, url, {**fix, "hr": "0,55"}, 400,
         "hr: '0,55' is not a number (use a decimal point, not a comma)"),
        (curator, url, {**fix, "endpoint": "QOL"}, 400, "endpoint: must be one of PFS"),
        (curator, url, {**fix, "correction_note": ["x"]}, 400,
         "correction_note must be a string"),
        (curator, url, {**fix, "trial": "OTHER"}, 400,
         "trial: a correction stays on the trial of the estimate it corrects (TEST-1), "
         "not OTHER"),
        (curator, url, {**fix, "trial": "NOPE"}, 404, "trial 'NOPE' does not exist"),
        (curator, "/api/estimates/999999/correct", fix, 404, "estimate 999999 does not exist"),
        (viewer, url, fix, 403, "viewer@example.org is a viewer; this needs the curator role"),
        ({}, url, fix, 401, "write endpoints need an API token"),
    ]
    for headers, path, body, status, message in cases:
        response = api.post(path, headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"].startswith(message), response.json()
    assert _state(app) == before and len(before) == 1
    assert _audits(app, "estimate.correct") == [] and _audits(app, "estimate.withdraw") == []
    assert len(_audits(app, "estimate.add")) == 1


def test_api_correcting_a_withdrawn_estimate_is_a_conflict(app: Any, api: TestClient,
                                                           users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    old = _post(api, headers, _trial(app))
    assert api.post(f"/api/estimates/{old['id']}/withdraw", headers=headers,
                    json={"reason": "retracted paper"}).status_code == 200
    before = _state(app)
    response = api.post(f"/api/estimates/{old['id']}/correct", headers=headers, json={
        "endpoint": "PFS", "hr": 0.55, "ci_low": 0.45, "ci_high": 0.67})
    assert response.status_code == 409
    assert response.json()["error"].startswith(
        f"estimate {old['id']} was already withdrawn (retracted paper)")
    assert _state(app) == before
    assert _audits(app, "estimate.correct") == []


def test_api_the_same_correction_sent_again_is_already_recorded(app: Any, api: TestClient,
                                                                  users: dict[str, str]) -> None:
    """A correction retried after a timeout found its estimate withdrawn by the first attempt
    and was told "already withdrawn … enter a new estimate on the trial page instead": it is
    answered 200 with the estimate the first attempt made, as decisions are. A different
    correction of the withdrawn estimate is still refused."""
    headers = _token(app, users["curator"])
    old = _post(api, headers, _trial(app), data_cut="2017-02-28")
    url = f"/api/estimates/{old['id']}/correct"
    fix = {"hr": 0.55, "ci_low": 0.45, "ci_high": 0.67, "correction_note": "typo"}
    first = api.post(url, headers=headers, json=fix)
    assert first.status_code == 201, first.text
    assert first.json()["already_recorded"] is False
    before = _state(app)

    again = api.post(url, headers=headers, json=fix)
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "already_recorded": True}
    assert _state(app) == before  # nothing stored twice, the note not changed
    assert len(_audits(app, "estimate.correct")) == 1
    # the kept fields filled from the old estimate are the same whether sent or left out
    assert api.post(url, headers=headers,
                    json={**fix, "data_cut": "2017-02-28"}).status_code == 200

    for other in ({**fix, "hr": 0.56}, {**fix, "data_cut": "2018-01-01"}, {**fix, "hr": "x"}):
        refused = api.post(url, headers=headers, json=other)
        assert refused.status_code == 409, (other, refused.text)
        assert refused.json()["error"].startswith(
            f"estimate {old['id']} was already withdrawn (corrected by estimate "
            f"{first.json()['id']}: typo)")
    assert _state(app) == before

    # the answer, sent back as a correction of the new estimate, is read as an estimate's JSON
    third = api.post(f"/api/estimates/{first.json()['id']}/correct", headers=headers,
                     json={**again.json(), "hr": 0.6, "ci_low": 0.5, "ci_high": 0.72})
    assert third.status_code == 201, third.text
    # once the correction is itself corrected, it is no longer what the first one made
    stale = api.post(url, headers=headers, json=fix)
    assert stale.status_code == 409, stale.text


# ------------------------------------------------------------- a derived estimate's JSON, back
def _derived(api: TestClient, headers: dict[str, str], trial_id: int) -> dict[str, Any]:
    """A P-value derivation whose direction came from an HR typed for control vs maintenance."""
    response = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "OS", "method": "p_value_events",
        "orientation": "control_vs_maint", "hr": "1.6", "p_value": "0.003", "events": 210})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["derivation_inputs"] == {"orientation": "control_vs_maint", "hr": 1.6,
                                         "favours": "maintenance", "p_value": "0.003",
                                         "events": 210}
    assert body["hr"] < 1  # stored as maintenance vs control
    return body


def test_api_correct_takes_a_derived_estimate_back_with_edited_inputs(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    old = _derived(api, headers, _trial(app))
    sent = {**old, "derivation_inputs": {**old["derivation_inputs"], "p_value": "0.03"}}
    response = api.post(f"/api/estimates/{old['id']}/correct", headers=headers, json=sent)
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["derivation_inputs"] == {**old["derivation_inputs"], "p_value": "0.03"}
    # same direction (maintenance better), weaker evidence: closer to 1, never inverted
    assert old["log_hr"] < new["log_hr"] < 0
    assert new["supersedes_id"] == old["id"]
    # the one warning: P 0.03 derives 1/1.35, no longer the 1.6 typed beside it
    (warning,) = new["warnings"]
    assert "is 1.35, but the HR typed is 1.6" in warning

    # sent back unchanged, the same inputs give the very estimate: nothing to correct
    same = api.post(f"/api/estimates/{new['id']}/correct", headers=headers, json=new)
    assert same.status_code == 400 and "already says" in same.text, same.text
    # with a note, the same inputs give the same number again
    again = api.post(f"/api/estimates/{new['id']}/correct", headers=headers,
                     json={**new, "notes": "re-checked against the full text"})
    assert again.status_code == 201, again.text
    third = again.json()
    assert third["derivation_inputs"] == new["derivation_inputs"]
    assert third["log_hr"] == pytest.approx(new["log_hr"]) and third["se"] == pytest.approx(
        new["se"])


def test_api_derivation_inputs_refusals_change_nothing(app: Any, api: TestClient,
                                                       users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    old = _derived(api, headers, _trial(app))
    url = f"/api/estimates/{old['id']}/correct"
    before = _state(app)
    cases: list[tuple[dict[str, Any], str]] = [
        ({**old, "events": 250}, "events is given twice with different values (250 at the top "
                                 "level, 210 in derivation_inputs)"),
        # an integer too large for a float was an OverflowError (a 500) in the comparison
        ({**old, "events": 10**400}, "events is given twice with different values (1000"),
        ({**old, "derivation_inputs": "p=0.003"}, "derivation_inputs must be an object"),
        ({**old, "derivation_inputs": {**old["derivation_inputs"], "p_value": "0,03"}},
         "p_value"),
    ]
    for body, message in cases:
        response = api.post(url, headers=headers, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"].startswith(message), response.json()
    assert _state(app) == before
    assert _audits(app, "estimate.correct") == []


def test_api_reported_ci_says_the_inputs_were_not_used(app: Any, api: TestClient,
                                                       users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    old = _derived(api, headers, _trial(app))
    # the paper's CI was found after all: the old JSON with the method switched
    response = api.post(f"/api/estimates/{old['id']}/correct", headers=headers, json={
        **old, "method": "reported_ci", "hr": 0.62, "ci_low": 0.45, "ci_high": 0.85})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["method"] == "reported_ci" and new["derivation_inputs"] is None
    assert new["hr"] == pytest.approx(0.62)
    assert new["warnings"] == ["derivation_inputs not used: method reported_ci takes hr, "
                               "ci_low and ci_high"]


# ------------------------------------------------------------------- the orientation entered
def test_api_correct_keeps_the_orientation_the_hr_was_entered_in(app: Any, api: TestClient,
                                                                 users: dict[str, str]) -> None:
    """An HR typed from the paper for control vs maintenance, corrected by sending the paper's
    corrected number alone, was read as maintenance vs control: 1.40 stored as 1.40, where the
    estimate said 0.70, with no word. The orientation left out is the stored one; a
    correction that moves the HR across 1 says so and asks to confirm the direction."""
    headers = _token(app, users["curator"])
    old = _post(api, headers, _trial(app), "1.43", "1.20", "1.70",
                orientation="control_vs_maint")
    assert old["hr"] == pytest.approx(1 / 1.43)
    url = f"/api/estimates/{old['id']}/correct"
    response = api.post(url, headers=headers,
                        json={"hr": "1.40", "ci_low": "1.18", "ci_high": "1.66"})
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["orientation_entered"] == "control_vs_maint"
    assert new["hr"] == pytest.approx(1 / 1.40) and new["ci_low"] == pytest.approx(1 / 1.66)
    assert not any("confirm the direction" in w for w in new["warnings"]), new["warnings"]

    # an estimate's JSON sent back gives its numbers as GET does: maintenance vs control
    echoed = api.post(f"/api/estimates/{new['id']}/correct", headers=headers,
                      json={**new, "hr": 0.72, "ci_low": 0.61, "ci_high": 0.85})
    assert echoed.status_code == 201, echoed.text
    third = echoed.json()
    assert third["hr"] == pytest.approx(0.72) and third["ci_high"] == pytest.approx(0.85)
    assert third["orientation_entered"] == "maint_vs_control"
    assert not any("confirm the direction" in w for w in third["warnings"])

    # the other orientation said outright is the client's; across 1, the answer asks
    flipped = api.post(f"/api/estimates/{third['id']}/correct", headers=headers, json={
        "orientation": "maint_vs_control", "hr": "1.40", "ci_low": "1.18", "ci_high": "1.66"})
    assert flipped.status_code == 201, flipped.text
    fourth = flipped.json()
    assert fourth["hr"] == pytest.approx(1.40)
    (warning,) = [w for w in fourth["warnings"] if "confirm the direction" in w]
    assert warning.startswith(
        f"the corrected HR 1.40 (1.18–1.66) favours control, where estimate {third['id']} "
        "(0.72 (0.61–0.85)) favoured maintenance (both as maintenance vs control): confirm "
        "the direction; the numbers were read as typed for maintenance vs control"), warning
    # kept with the estimate for whoever verifies it
    assert f"Check at entry: {warning}" in fourth["entry_notes"]


# ------------------------------------------------------------ one number per report and cut
def test_api_a_second_extraction_of_the_same_report_and_cut_is_refused(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """Other numbers for a report and data cut that have an estimate were saved beside it:
    two HRs for one trial and cut, the later entered silently pooled. Refused, naming the
    estimate to correct; another cut (date, label or report) is a new extraction."""
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    with db(app) as session:
        (report,) = session.exec(select(TrialReport).where(TrialReport.trial_id == trial_id))
        report_id = report.id
    first = _post(api, headers, trial_id, "0.50", "0.40", "0.625", report_id=report_id,
                  data_cut="2017-02-28")
    before = _state(app)
    for body in ({"hr": "0.52", "ci_low": "0.42", "ci_high": "0.64"},
                 # another method is no way round it
                 {"method": "p_value_events", "p_value": "0.001", "events": 300,
                  "favours": "maintenance"}):
        response = api.post("/api/estimates", headers=headers, json={
            "trial_id": trial_id, "endpoint": "PFS", "report_id": report_id,
            "data_cut": "2017-02-28", **body})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            f"data_cut: estimate {first['id']} of TEST-1 already gives PFS (post-ASCT, "
            f"maintenance vs control) for the same report and data cut (report {report_id}, "
            "data cut 2017-02-28): HR 0.50 (0.40–0.63), reported HR and 95% CI. A trial's data "
            f"cut has one number: to change it, correct estimate {first['id']} (its Correct "
            f"button, or POST /api/estimates/{first['id']}/correct); if this is another data "
            "cut, give its date or label (or its report)")
    assert _state(app) == before
    # the same numbers again, with another note, are still said to be that estimate (a
    # repeat, not a conflict)
    repeat = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "report_id": report_id,
        "data_cut": "2017-02-28", "hr": "0.50", "ci_low": "0.40", "ci_high": "0.625",
        "notes": "Table 2"})
    assert repeat.status_code == 400 and "hr: 0.50 (0.40–0.63) is already estimate" in \
        repeat.json()["error"]
    # another cut of the same report, another endpoint: new extractions
    later = _post(api, headers, trial_id, "0.52", "0.42", "0.64", report_id=report_id,
                  data_cut="2018-06-30")
    _post(api, headers, trial_id, "0.52", "0.42", "0.64", report_id=report_id,
          data_cut="2017-02-28", endpoint="OS")
    # a correction may not move an estimate onto a cut that has one either
    moved = api.post(f"/api/estimates/{later['id']}/correct", headers=headers,
                     json={"hr": "0.52", "ci_low": "0.42", "ci_high": "0.64",
                           "data_cut": "2017-02-28"})
    assert moved.status_code == 400, moved.text
    assert moved.json()["error"].startswith(
        f"data_cut: estimate {first['id']} of TEST-1 already gives PFS")
    # but correcting the estimate of that cut itself is what the message asks for
    fixed = api.post(f"/api/estimates/{first['id']}/correct", headers=headers,
                     json={"hr": "0.52", "ci_low": "0.42", "ci_high": "0.64"})
    assert fixed.status_code == 201, fixed.text


def test_api_the_same_extraction_sent_again_is_already_recorded(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """A client retrying POST /api/estimates after a lost answer was told 400 "already
    estimate N … an extraction is entered once", as if it had done something wrong: when
    every value sent is the stored estimate's, it is answered 200 with that estimate and
    ``already_recorded: true``, nothing stored twice. A repeat of its report, cut and numbers
    that differs in anything else is still refused, naming the estimate to correct."""
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    with db(app) as session:
        (report,) = session.exec(select(TrialReport).where(TrialReport.trial_id == trial_id))
        report_id = report.id
    sent = {"trial_id": trial_id, "endpoint": "PFS", "report_id": report_id,
            "data_cut": "2017-02-28", "data_cut_label": "median follow-up 34 months",
            "n_maintenance": 231, "n_control": 229, "events": 300, "notes": "Table 2",
            "orientation": "control_vs_maint", "hr": "2.00", "ci_low": "1.60", "ci_high": "2.50"}
    first = api.post("/api/estimates", headers=headers, json=sent)
    assert first.status_code == 201, first.text
    assert first.json()["already_recorded"] is False
    before = _state(app)

    again = api.post("/api/estimates", headers=headers, json=sent)
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "already_recorded": True}
    # the numbers are compared, not how they were written
    as_numbers = api.post("/api/estimates", headers=headers,
                          json={**sent, "hr": 2, "ci_low": 1.6, "ci_high": 2.5})
    assert as_numbers.status_code == 200 and as_numbers.json()["id"] == first.json()["id"]
    assert _state(app) == before and len(_audits(app, "estimate.add")) == 1

    stored = first.json()["id"]
    for other in ({**sent, "notes": "Table 3"}, {**sent, "n_control": 230},
                  {**sent, "citation": "Lancet 2012"}):
        refused = api.post("/api/estimates", headers=headers, json=other)
        assert refused.status_code == 400, (other, refused.text)
        assert refused.json()["error"] == (
            f"hr: 0.50 (0.40–0.63) is already estimate {stored} of TEST-1, with the same "
            "report, endpoint, setting, comparison and data cut: an extraction is entered once "
            f"(to change estimate {stored}, use its Correct button)")
    assert _state(app) == before and len(_audits(app, "estimate.add")) == 1
    # withdrawn, it is no longer there to repeat: the same extraction is a new estimate
    assert api.post(f"/api/estimates/{stored}/withdraw", headers=headers,
                    json={"reason": "entered on the wrong trial"}).status_code == 200
    anew = api.post("/api/estimates", headers=headers, json=sent)
    assert anew.status_code == 201 and anew.json()["id"] != stored


# ------------------------------------------------------------------ sent back unchanged
@pytest.mark.parametrize(("typed", "orientation"), [
    (("0.70", "0.50", "0.98"), "maint_vs_control"),
    # typed for control vs maintenance: GET gives the inverse, maintenance vs control
    (("1.43", "1.20", "1.70"), "control_vs_maint"),
])
def test_api_an_estimates_json_sent_back_unchanged_corrects_nothing(
        app: Any, api: TestClient, users: dict[str, str], typed: tuple[str, str, str],
        orientation: str) -> None:
    """GET an estimate, send it back as a correction: the JSON's 0.7 is not the "0.70" typed
    (nor 0.699 the 1.43 typed for control vs maintenance), so the text compared differed and a
    correction was stored, withdrawing the verified estimate for an unverified copy of it.
    The numbers are compared: nothing changed, nothing is saved, and the answer says so."""
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    hr, lo, hi = typed
    _post(api, headers, trial_id, hr, lo, hi, orientation=orientation, data_cut="2017-02-28")
    (stored,) = [e for t in api.get("/api/trials", headers=headers).json()["trials"]
                 for e in t["estimates"]]
    before = _state(app)
    as_text = {**stored, "hr": str(stored["hr"]), "ci_low": str(stored["ci_low"])}
    for body in (stored, as_text,
                 {"hr": hr, "ci_low": lo, "ci_high": hi},  # the orientation kept
                 {"hr": hr + "0", "ci_low": lo, "ci_high": hi + "0"}):
        response = api.post(f"/api/estimates/{stored['id']}/correct", headers=headers,
                            json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == (
            f"hr: is what estimate {stored['id']} already says, with everything else: nothing "
            "changed, so nothing was saved (a correction changes a field, or leave the estimate "
            "as it is)")
    assert _state(app) == before
    assert _audits(app, "estimate.correct") == [] and _audits(app, "estimate.withdraw") == []
    # a changed number is a correction
    changed = api.post(f"/api/estimates/{stored['id']}/correct", headers=headers,
                       json={**stored, "ci_low": stored["ci_low"] * 1.01})
    assert changed.status_code == 201, changed.text


# ------------------------------------------------------------------ two correctors, one wins
def test_api_a_correction_that_lost_to_another_says_who_and_what_is_stored(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """Two curators correct one estimate; the second was answered a bare 409 "already
    withdrawn (corrected by estimate N)". It now names who corrected it, what is stored now
    and what was sent, to check against it."""
    curator = _token(app, users["curator"])
    old = _post(api, curator, _trial(app), data_cut="2017-02-28")
    admin = _token(app, "admin@example.org")  # (after _post's, which replaces it)
    url = f"/api/estimates/{old['id']}/correct"
    won = api.post(url, headers=admin, json={"hr": 0.55, "ci_low": 0.45, "ci_high": 0.67})
    assert won.status_code == 201, won.text
    before = _state(app)
    mine = {"hr": "0.56", "ci_low": "0.46", "ci_high": "0.68", "correction_note": "Table 2"}
    lost = api.post(url, headers=curator, json=mine)
    assert lost.status_code == 409, lost.text
    body = lost.json()
    assert body["code"] == "conflict"
    assert body["error"].startswith(
        f"estimate {old['id']} was already withdrawn (corrected by estimate {won.json()['id']})"
        " by admin@example.org at ")
    assert (f"; estimate {won.json()['id']} now says PFS HR 0.55 (0.45–0.67), data cut "
            f"2017-02-28 (unverified) (nothing you sent was saved; check your numbers against "
            f"estimate {won.json()['id']} and correct that one if they are still needed)"
            ) in body["error"]
    assert body["withdrawn_by"] == "admin@example.org"
    assert body["current"]["id"] == won.json()["id"]
    assert body["current"]["hr"] == pytest.approx(0.55)
    assert body["not_saved"] == mine
    assert _state(app) == before and len(_audits(app, "estimate.correct")) == 1



def _saved_first_while_sent(app: Any, email: str, trial_id: int, fields: dict[str, str],
                            send: Any) -> tuple[int, Any]:
    """Play the first of two requests for the same extraction: hold the trial's lock, let
    ``send`` (the second, in a thread) reach its first write, save ``fields`` with mmlr's own
    functions and commit. Returns the saved estimate's id and ``send``'s response."""
    import threading

    from conftest import first_write_seen

    from screening.web.extraction import save_estimate
    from screening.web.verification import parse_new_estimate
    from store.record_lock import locked_trial

    answer: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: answer.update(r=send()), daemon=True)
    with db(app) as session:
        trial = locked_trial(session, trial_id)
        with first_write_seen(app.state.ctx.engine) as writing:
            sender.start()
            # The request reached its first write: the lock (or, unlocked, its insert).
            assert writing.wait(timeout=60), "the request never wrote"
        user = session.exec(select(User).where(User.email == email)).one()
        draft = parse_new_estimate(fields, trial=trial, reports=[], second_person=False)
        first = save_estimate(session, trial=trial, draft=draft, user=user)
        session.commit()
        assert first.id is not None
        first_id = first.id
    sender.join(timeout=90)
    return first_id, answer["r"]


def test_api_the_same_estimate_sent_while_the_first_is_saving_is_stored_once(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    """A client's retry that arrives while its first request is still saving: both passed the
    check for a repeat before either was stored, and the extraction was stored twice. The
    API request must wait for the first and then refuse its repeat. Runs on SQLite (a write
    transaction) and PostgreSQL (a row lock)."""
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    fields = {"endpoint": "PFS", "hr": "0.50", "ci_low": "0.40", "ci_high": "0.625"}
    first_id, response = _saved_first_while_sent(
        app, users["curator"], trial_id, fields,
        lambda: api.post("/api/estimates", headers=headers,
                         json={"trial_id": trial_id, **fields}))
    # the retry is answered with the estimate the first request stored
    assert response.status_code == 200, response.text
    assert response.json()["id"] == first_id and response.json()["already_recorded"] is True
    assert [e.id for e in _estimates(app) if e.withdrawn_at is None] == [first_id]


def test_the_extraction_form_sent_while_the_same_is_saving_is_stored_once(
        app: Any, users: dict[str, str]) -> None:
    """The trial page's form, sent twice at once (a double click on a slow server)."""
    from test_web import as_role, csrf_from

    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    fields = {"endpoint": "PFS", "method": "reported_ci", "orientation": "maint_vs_control",
              "hr": "0.50", "ci_low": "0.40", "ci_high": "0.625"}
    token = csrf_from(curator.get(f"/trials/{trial_id}").text)
    first_id, response = _saved_first_while_sent(
        app, users["curator"], trial_id, fields,
        lambda: curator.post(f"/trials/{trial_id}/estimates", follow_redirects=False,
                             data={"csrf_token": token, **fields}))
    assert response.status_code == 400, response.text
    assert "This extraction is saved already" in response.text
    assert [e.id for e in _estimates(app) if e.withdrawn_at is None] == [first_id]
