"""Verifying estimates: a second person checks the numbers (MMLR_VERIFY_SECOND_PERSON), on the
trial page and through the JSON API, over the real app and database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from sqlmodel import col, select
from test_web import as_role, csrf_from, db, login, make_user
from test_web_api import _token
from test_web_evidence import _estimates, _post_estimate, _trial, _verify, second_curator

from store.models import AuditLog, Estimate, User

app = test_web.app
users = test_web.users

RULE = ("cannot be set by the person entering the estimate: a second person (another curator "
        "or an admin) verifies it once it is saved (MMLR_VERIFY_SECOND_PERSON is on)")
NUMBERS = {"hr": "0.50", "ci_low": "0.40", "ci_high": "0.625"}


@pytest.fixture
def api(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _user_id(app: Any, email: str) -> int:
    with db(app) as session:
        return session.exec(select(User.id).where(User.email == email)).one()  # type: ignore[return-value]


def _verify_audits(app: Any) -> list[tuple[str, str]]:
    with db(app) as session:
        return [(a.action, a.actor) for a in session.exec(
            select(AuditLog).where(col(AuditLog.action).in_(
                ["estimate.verify", "estimate.unverify"])).order_by(col(AuditLog.id)))]


def _row(html: str, estimate_id: int | None) -> str:
    return html.split(f'id="estimate-{estimate_id}"')[1].split("</tr>")[0]


def _entered(app: Any, c: TestClient) -> Estimate:
    """One unverified estimate entered on the trial page by ``c``."""
    assert _post_estimate(c, _trial(app), **NUMBERS).status_code == 303
    (estimate,) = _estimates(app)
    assert not estimate.verified
    return estimate


# ----------------------------------------------------------------------------- on entry
def test_form_refuses_an_estimate_saved_verified_by_the_person_entering_it(
        app: Any, users: dict[str, str]) -> None:
    trial_id = _trial(app)
    curator = as_role(app, users, "curator")
    page = curator.get(f"/trials/{trial_id}").text
    # nothing to tick: the page says who verifies instead
    assert 'name="verified" value="1"> Verified against' not in page
    assert "another curator or an admin checks the numbers" in page
    response = _post_estimate(curator, trial_id, verified="1", notes="typed <by hand>", **NUMBERS)
    assert response.status_code == 400
    assert f"Verified {RULE}" in response.text
    assert "typed &lt;by hand&gt;</textarea>" in response.text  # what was typed is kept
    # every bad field at once, so nobody fixes the numbers only to be refused again
    both = _post_estimate(curator, trial_id, verified="on", hr="0", ci_low="0.4", ci_high="0.6")
    assert both.status_code == 400
    assert "HR must be greater than 0" in both.text and f"Verified {RULE}" in both.text
    assert _estimates(app) == []


def test_api_refuses_an_estimate_saved_verified_by_the_person_entering_it(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    trial_id = _trial(app)
    response = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "verified": True, **NUMBERS})
    assert response.status_code == 400
    assert response.json() == {"code": "invalid",
                               "error": f"verified: {RULE}"}
    bad = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "verified": True, "hr": 0, "ci_low": 0.4,
        "ci_high": 0.6})
    assert bad.status_code == 400
    assert bad.json()["error"] == f"hr: must be greater than 0; verified: {RULE}"
    assert _estimates(app) == []
    # unticked, it is saved, unverified
    saved = api.post("/api/estimates", headers=headers, json={
        "trial_id": trial_id, "endpoint": "PFS", "verified": False, **NUMBERS})
    assert saved.status_code == 201 and saved.json()["verified"] is False


# ----------------------------------------------------------------------------- verifying
def test_the_person_who_entered_an_estimate_cannot_verify_it(app: Any,
                                                             users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    estimate = _entered(app, curator)
    row = _row(curator.get(f"/trials/{estimate.trial_id}").text, estimate.id)
    assert "awaiting a second person: you entered it" in row
    assert f'action="/estimates/{estimate.id}/verify"' not in row  # no button that would fail
    for state in ("1", None):  # the button's state, or the toggle of an older page
        response = _verify(curator, estimate, state)
        assert response.status_code == 403
        assert (f"estimate {estimate.id} was entered by you ({users['curator']}): a second "
                "person, another curator or an admin, must verify it "
                "(MMLR_VERIFY_SECOND_PERSON is on)") in response.text
    (after,) = _estimates(app)
    assert not after.verified and after.verified_by is None
    assert _verify_audits(app) == []


def test_api_refuses_verification_by_the_person_who_entered_it(
        app: Any, api: TestClient, users: dict[str, str]) -> None:
    headers = _token(app, users["curator"])
    estimate = _entered(app, as_role(app, users, "curator"))
    url = f"/api/estimates/{estimate.id}/verify"
    response = api.post(url, headers=headers, json={"verified": True})
    assert response.status_code == 403
    assert response.json()["error"] == (
        f"estimate {estimate.id} was entered by you ({users['curator']}): a second person, "
        "another curator or an admin, must verify it (MMLR_VERIFY_SECOND_PERSON is on) "
        "(ask a colleague to check the numbers against the full text)")
    assert api.post(url, headers=headers).status_code == 403  # an empty body means verify
    viewer = api.post(url, headers=_token(app, users["viewer"]))
    assert viewer.status_code == 403 and "needs the curator role" in viewer.json()["error"]
    assert api.post(url, headers=headers, json={"verified": "yes"}).json() == {
        "code": "invalid", "error": "verified must be true or false"}
    assert api.post("/api/estimates/999/verify", headers=headers).status_code == 404
    assert not _estimates(app)[0].verified and _verify_audits(app) == []


def test_another_curator_verifies_and_the_page_says_who(app: Any,
                                                       users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    estimate = _entered(app, curator)
    checker = second_curator(app, "q&a@example.org")  # "&" is escaped on the page
    row = _row(checker.get(f"/trials/{estimate.trial_id}").text, estimate.id)
    assert f'action="/estimates/{estimate.id}/verify"' in row and ">Verify</button>" in row
    assert f"entered by {users['curator']}" in row
    assert _verify(checker, estimate).status_code == 303
    (after,) = _estimates(app)
    assert after.verified and after.verified_by == _user_id(app, "q&a@example.org")
    row = _row(curator.get(f"/trials/{estimate.trial_id}").text, estimate.id)
    assert '<p class="verified-by">verified by q&amp;a@example.org</p>' in row
    assert "q&a@" not in row
    # un-verifying stays allowed, to the person who entered it too; re-verifying does not
    assert _verify(curator, after, "0").status_code == 303
    assert not _estimates(app)[0].verified and _estimates(app)[0].verified_by is None
    assert _verify(curator, after, "1").status_code == 403
    assert _verify_audits(app) == [("estimate.verify", "q&a@example.org"),
                                   ("estimate.unverify", users["curator"])]


def test_an_admin_verifies_on_the_page_and_through_the_api(app: Any, api: TestClient,
                                                          users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    estimate = _entered(app, curator)
    admin = as_role(app, users, "admin")
    assert _verify(admin, estimate).status_code == 303
    assert _estimates(app)[0].verified_by == _user_id(app, users["admin"])
    assert f"verified by {users['admin']}" in admin.get(f"/trials/{estimate.trial_id}").text
    assert _verify(admin, estimate, "1").status_code == 303  # already verified: no change
    assert _verify_audits(app) == [("estimate.verify", users["admin"])]

    headers = _token(app, users["admin"])
    url = f"/api/estimates/{estimate.id}/verify"
    off = api.post(url, headers=headers, json={"verified": False})
    assert off.status_code == 200 and off.json()["verified"] is False
    on = api.post(url, headers=headers, json={"verified": True})
    assert on.status_code == 200, on.text
    body = on.json()
    assert body["verified"] is True and body["id"] == estimate.id
    assert body["verified_by"] == _user_id(app, users["admin"])
    assert body["created_by"] == _user_id(app, users["curator"])


def test_a_correction_needs_a_second_person_again(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    estimate = _entered(app, curator)
    checker = second_curator(app)
    assert _verify(checker, estimate).status_code == 303
    # the checker corrects the numbers: the correction is theirs, so the first curator checks it
    token = csrf_from(checker.get(f"/estimates/{estimate.id}/edit").text)
    assert checker.post(f"/estimates/{estimate.id}/edit", follow_redirects=False, data={
        "csrf_token": token, "endpoint": "PFS", "method": "reported_ci",
        "orientation": "maint_vs_control", "hr": "0.55", "ci_low": "0.45",
        "ci_high": "0.67"}).status_code == 303
    old, new = _estimates(app)
    assert new.supersedes_id == old.id and not new.verified
    assert new.created_by == _user_id(app, "checker@example.org")
    assert _verify(checker, new).status_code == 403
    assert _verify(curator, new).status_code == 303
    assert _estimates(app)[1].verified_by == _user_id(app, users["curator"])


def test_seed_evidence_stays_verified(app: Any, users: dict[str, str]) -> None:
    from monitor.bootstrap import load_seed_evidence

    with db(app) as session:
        load_seed_evidence(session)
        session.commit()
    seeded = [e for e in _estimates(app) if e.verified]
    assert seeded and all(e.created_by is None and e.source_key for e in seeded)
    page = as_role(app, users, "viewer").get(f"/trials/{seeded[0].trial_id}").text
    assert "seed evidence (published figures)" in _row(page, seeded[0].id)


# ----------------------------------------------------------------------------- off
@pytest.fixture
def lenient_app(settings: Any) -> Iterator[Any]:
    from screening.web.app import create_app

    application = create_app(settings.model_copy(update={"verify_second_person": False}))
    yield application
    application.state.retrainer.join(timeout=30)
    application.state.ctx.dispose()


def test_with_the_rule_off_people_verify_their_own_estimates(lenient_app: Any) -> None:
    app = lenient_app
    make_user(app, "solo@example.org", "curator")
    solo = TestClient(app, raise_server_exceptions=False)
    assert login(solo, "solo@example.org").status_code == 303
    trial_id = _trial(app)
    page = solo.get(f"/trials/{trial_id}").text
    assert 'name="verified" value="1"> Verified against the full text' in page
    assert _post_estimate(solo, trial_id, verified="1", **NUMBERS).status_code == 303
    (estimate,) = _estimates(app)
    assert estimate.verified and estimate.verified_by == _user_id(app, "solo@example.org")
    assert "verified by solo@example.org" in _row(solo.get(f"/trials/{trial_id}").text,
                                                  estimate.id)
    assert _verify(solo, estimate, "0").status_code == 303
    assert _verify(solo, estimate, "1").status_code == 303
    assert _estimates(app)[0].verified
    api = TestClient(app, raise_server_exceptions=False)
    saved = api.post("/api/estimates", headers=_token(app, "solo@example.org"), json={
        "trial_id": trial_id, "endpoint": "OS", "verified": True, **NUMBERS})
    assert saved.status_code == 201 and saved.json()["verified"] is True


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from store.settings import load_settings

    assert load_settings().verify_second_person is True
    monkeypatch.setenv("MMLR_VERIFY_SECOND_PERSON", "false")
    assert load_settings().verify_second_person is False


def test_a_verified_estimate_is_announced_until_the_next_pool_run(
        app: Any, users: dict[str, str]) -> None:
    """Verifying changes the analyses at the next pool run, not at once: the flash says where
    the estimate will be pooled, and /estimates says which analyses the next run changes,
    until it has run."""
    import lxml.html

    from reports.pool import pool_all

    def notice(c: TestClient) -> list[str]:
        page = lxml.html.fromstring(c.get("/estimates").text)
        return [" ".join(li.text_content().split())
                for li in page.xpath('//section[@aria-label="Not yet in these numbers"]//li')]

    curator = as_role(app, users, "curator")
    estimate = _entered(app, curator)
    assert notice(curator) == []  # an unverified estimate changes no analysis
    checker = second_curator(app)
    assert _verify(checker, estimate).status_code == 303
    flash = lxml.html.fromstring(checker.get(f"/trials/{estimate.trial_id}").text).xpath(
        'string(//p[contains(@class, "flash")])')
    assert "The next pool run (mmlr pool, mmlr run, the scheduled cycle, or Pool now on the " \
           "estimates page) pools it in PFS post-ASCT; PFS all settings" in " ".join(flash.split())
    assert notice(checker) == [
        "Lenalidomide maintenance — PFS (EFS/TTP accepted) — post-ASCT: new analysis; "
        "TEST-1 joins.",
        "Lenalidomide maintenance — PFS (EFS/TTP accepted) — all settings: new analysis; "
        "TEST-1 joins."]
    pool_all(app.state.ctx)
    assert notice(checker) == []
    assert _verify(curator, estimate, "0").status_code == 303
    assert ("It leaves Lenalidomide maintenance — PFS (EFS/TTP accepted) — post-ASCT; "
            "Lenalidomide maintenance — PFS (EFS/TTP accepted) — all settings at the next pool "
            "run") in curator.get(f"/trials/{estimate.trial_id}").text
    assert [line.split(": ")[1] for line in notice(curator)] == ["TEST-1 leaves."] * 2


def test_unverifying_an_estimate_no_analysis_used_says_nothing_changes(
        app: Any, users: dict[str, str]) -> None:
    """An earlier data cut superseded by a later one was in no analysis: unverifying it must
    not say it "leaves the analyses" (nobody would find the change)."""
    from reports.pool import pool_all

    curator = as_role(app, users, "curator")
    trial_id = _trial(app)
    for cut, hr in (("2020-06-30", "0.60"), ("2023-06-30", "0.70")):
        assert _post_estimate(curator, trial_id, hr=hr, ci_low="0.50", ci_high="0.90",
                              data_cut=cut).status_code == 303
    earlier, later = _estimates(app)
    checker = second_curator(app)
    for estimate in (earlier, later):
        assert _verify(checker, estimate).status_code == 303
    pool_all(app.state.ctx)
    assert _verify(curator, earlier, "0").status_code == 303
    page = curator.get(f"/trials/{trial_id}").text
    assert f"Estimate {earlier.id} marked unverified. It was in no analysis of the last pool " \
           "run: no pooled number changes." in page
    assert "It leaves" not in page
