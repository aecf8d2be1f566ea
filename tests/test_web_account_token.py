"""Self-service API tokens on the account page, and their revocation by a password change (web
and `mmlr users password`), over the real app and database (SQLite, or PostgreSQL with
MMLR_TEST_DATABASE_URL)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import test_web
from fastapi.testclient import TestClient
from migration_steps import alembic_config
from sqlmodel import Session, select
from test_web import PASSWORD, as_role, csrf_from, db, login, make_user, update_user
from test_web_account import NEW_PASSWORD, _audit, _user, change

from screening.web.app import create_app
from screening.web.auth import hash_token, issue_api_token, password_or_generated
from screening.web.templating import utc_text
from store.models import AuditLog, LoginAttempt, Trial, User, utcnow

#: The token lifetime of this module's app: not the default, so a test fails if it is ignored.
TOKEN_DAYS = 7


@pytest.fixture
def app(settings: Any) -> Iterator[Any]:
    application = create_app(settings.model_copy(update={"api_token_days": TOKEN_DAYS}))
    yield application
    application.state.retrainer.join(timeout=30)
    application.state.pooler.join(timeout=30)
    application.state.ctx.dispose()

client = test_web.client
users = test_web.users

_SECRET = re.compile(r'<code class="secret">(mmlr_[^<]+)</code>')


def _create(browser: TestClient) -> str:
    token = csrf_from(browser.get("/account").text)
    page = browser.post("/account/token", data={"csrf_token": token,
                                                 "current_password": PASSWORD})
    assert page.status_code == 200, page.text
    found = _SECRET.findall(page.text)
    assert len(found) == 1, "the new token is shown exactly once"
    return str(found[0])


def _revoke(browser: TestClient) -> Any:
    token = csrf_from(browser.get("/account").text)
    return browser.post("/account/token/revoke", data={"csrf_token": token},
                        follow_redirects=False)


def _reads(app: Any, token: str) -> int:
    response = TestClient(app).get("/api/trials", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


# ----------------------------------------------------------------------------- helper
def test_password_or_generated() -> None:
    password, generated = password_or_generated(None)
    assert generated == password and len(password) >= 12
    assert password_or_generated(None)[0] != password  # random each time
    assert password_or_generated("given one") == ("given one", None)


# ----------------------------------------------------------------------------- create
def test_create_shows_the_token_once_and_it_works_as_bearer(
        app: Any, users: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    email = users["curator"]
    curator = as_role(app, users, "curator")
    page = curator.get("/account").text
    assert "You have no API token." in page and "Create API token" in page
    assert 'action="/account/token/revoke"' not in page

    token = _create(curator)
    assert token.startswith("mmlr_") and len(token) > 40
    headers = {"Authorization": f"Bearer {token}"}
    api = TestClient(app)
    assert api.get("/api/trials", headers=headers).status_code == 200
    with db(app) as session:  # a curator's token writes too
        session.add(Trial(name="TOKEN-TRIAL", drug="lenalidomide", setting="post_asct"))
        session.commit()
    wrote = api.post("/api/estimates", headers=headers, json={
        "trial": "TOKEN-TRIAL", "endpoint": "PFS", "hr": 0.5, "ci_low": 0.4, "ci_high": 0.625})
    assert wrote.status_code == 201, wrote.text

    # shown once: the next visit says a token exists but never shows it or its hash
    again = curator.get("/account")
    assert again.headers["cache-control"] == "no-store"
    stored = _user(app, email).api_token_hash
    assert stored == hash_token(token)
    assert token not in again.text and stored not in again.text
    assert "You have an API token, issued" in again.text
    assert "Replace API token" in again.text and 'action="/account/token/revoke"' in again.text

    (row,) = _audit(app, "user.token_issued")
    assert (row.actor, row.object_id) == (email, email)
    expires = _user(app, email).api_token_expires_at
    assert expires is not None
    assert row.details == {"replaced": False, "expires_at": expires.isoformat()}
    # MMLR_API_TOKEN_DAYS of this module's app (7), counted from the issue
    assert abs(expires - row.at - timedelta(days=TOKEN_DAYS)) < timedelta(minutes=1)
    assert f"It expires {utc_text(expires)}." in again.text
    assert 'id="token-expiry-warning"' in again.text  # 7 days: within the two weeks
    with db(app) as session:
        everything = json.dumps([r.details for r in session.exec(select(AuditLog)).all()])
    assert token not in everything and stored not in everything
    assert token not in caplog.text


def test_a_viewer_token_reads_but_does_not_write(app: Any, users: dict[str, str]) -> None:
    viewer = as_role(app, users, "viewer")
    assert "writing needs the curator role" in viewer.get("/account").text
    token = _create(viewer)
    headers = {"Authorization": f"Bearer {token}"}
    api = TestClient(app, raise_server_exceptions=False)
    assert api.get("/api/trials", headers=headers).status_code == 200
    refused = api.post("/api/decisions", headers=headers,
                       json={"pmid": 1, "decision": "include"})
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("viewer@example.org is a viewer")


def test_account_page_names_an_admin_who_issued_the_token(app: Any,
                                                          users: dict[str, str]) -> None:
    with db(app) as session:
        user = session.exec(select(User).where(User.email == users["curator"])).one()
        issue_api_token(session, user, actor=users["admin"], days=90)
        session.commit()
    page = as_role(app, users, "curator").get("/account").text
    assert f"by {users['admin']}" in page and "You have an API token" in page


# ----------------------------------------------------------------------------- rotate/revoke
def test_rotating_makes_the_old_token_fail(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    first = _create(curator)
    second = _create(curator)
    assert first != second
    assert _reads(app, first) == 401
    assert _reads(app, second) == 200
    rows = _audit(app, "user.token_issued")
    assert [r.details["replaced"] for r in rows] == [False, True]
    assert {r.actor for r in rows} == {users["curator"]}


def test_revoking_makes_the_token_fail(app: Any, users: dict[str, str]) -> None:
    email = users["curator"]
    curator = as_role(app, users, "curator")
    token = _create(curator)
    assert _reads(app, token) == 200
    response = _revoke(curator)
    assert response.status_code == 303 and response.headers["location"] == "/account"
    page = curator.get("/account").text
    assert "Your API token was revoked: it no longer works." in page
    assert "You have no API token." in page
    assert _reads(app, token) == 401
    assert _user(app, email).api_token_hash is None
    (row,) = _audit(app, "user.token_revoked")
    assert (row.actor, row.object_id) == (email, email)

    # nothing left to revoke: said so, not audited again
    assert _revoke(curator).status_code == 303
    assert "You have no API token, so there was nothing to revoke." in \
        curator.get("/account").text
    assert len(_audit(app, "user.token_revoked")) == 1


def test_token_forms_need_the_csrf_token(app: Any, users: dict[str, str]) -> None:
    email = users["curator"]
    curator = as_role(app, users, "curator")
    token = _create(curator)
    for path in ("/account/token", "/account/token/revoke"):
        for data in ({}, {"csrf_token": "x" * 43}):
            response = curator.post(path, data=data, follow_redirects=False)
            assert response.status_code == 403, path
            assert "security token is missing or does not match" in response.text
            assert not _SECRET.search(response.text)
    assert _user(app, email).api_token_hash == hash_token(token)
    assert _reads(app, token) == 200
    assert len(_audit(app, "user.token_issued")) == 1 and _audit(app, "user.token_revoked") == []


def test_token_forms_need_a_login(client: TestClient, users: dict[str, str]) -> None:
    page = client.get("/account", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Faccount"
    token = csrf_from(client.get("/login").text)  # a valid CSRF token, but nobody logged in
    for path in ("/account/token", "/account/token/revoke"):
        response = client.post(path, data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 401 and "please log in" in response.text
        assert not _SECRET.search(response.text)
    assert _audit(app=client.app, action="user.token_issued") == []
    with db(client.app) as session:
        assert all(u.api_token_hash is None for u in session.exec(select(User)).all())


def test_creating_a_token_asks_for_the_password_again(app: Any, users: dict[str, str]) -> None:
    """A stolen session cookie alone must not mint a credential that outlives the session."""
    email = users["curator"]
    curator = as_role(app, users, "curator")
    for password, message in (("", "current password: enter it"),
                              ("wrong password!", "current password: it is wrong")):
        csrf = csrf_from(curator.get("/account").text)
        page = curator.post("/account/token",
                            data={"csrf_token": csrf, "current_password": password})
        assert page.status_code == 400 and message in page.text
        assert 'id="token_password" name="current_password" type="password" ' \
            'autocomplete="current-password" required aria-invalid="true"' in page.text
        assert not _SECRET.search(page.text)
    assert _user(app, email).api_token_hash is None
    assert _audit(app, "user.token_issued") == []
    failed = _audit(app, "auth.login_failed")
    assert [r.details.get("via") for r in failed if r.object_id == email] == ["token_create"]


# ----------------------------------------------------------------------------- password change
def test_password_change_revokes_the_token_and_says_so(app: Any, users: dict[str, str]) -> None:
    email = users["curator"]
    curator = as_role(app, users, "curator")
    token = _create(curator)
    response = change(curator, PASSWORD, NEW_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 303
    page = curator.get("/account").text
    assert ("Your password was changed; your other sessions are logged out and your API "
            "token was revoked.") in page
    assert "You have no API token." in page
    assert _reads(app, token) == 401
    (row,) = _audit(app, "user.token_revoked")
    assert (row.actor, row.object_id) == (email, email)
    assert row.details == {"via": "password_change"}

    # without a token the message does not mention one
    assert change(curator, NEW_PASSWORD, PASSWORD, PASSWORD).status_code == 303
    page = curator.get("/account").text
    assert "Your password was changed; your other sessions are logged out." in page
    assert "token was revoked" not in page
    assert len(_audit(app, "user.token_revoked")) == 1


def test_a_refused_password_change_keeps_the_token(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    token = _create(curator)
    assert change(curator, "wrong password!", NEW_PASSWORD, NEW_PASSWORD).status_code == 400
    assert _reads(app, token) == 200
    assert _audit(app, "user.token_revoked") == []


def test_cli_password_reset_revokes_the_token(app: Any, users: dict[str, str], settings: Any,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from monitor import cli

    monkeypatch.setenv("MMLR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MMLR_DATA_DIR", str(settings.data_dir))
    email = users["viewer"]
    token = _create(as_role(app, users, "viewer"))
    assert cli.main(["users", "password", email, "--password", NEW_PASSWORD]) == 0
    out = capsys.readouterr().out
    assert out.strip() == (f"password of {email} changed; their sessions are logged out; "
                           "their API token was revoked")
    assert _reads(app, token) == 401
    (row,) = _audit(app, "user.token_revoked")
    assert (row.actor, row.object_id, row.details) == ("system", email,
                                                       {"via": "password_change"})
    assert login(TestClient(app), email, NEW_PASSWORD).status_code == 303

    # no token now: the message does not claim one was revoked
    assert cli.main(["users", "password", email, "--password", PASSWORD]) == 0
    assert "API token" not in capsys.readouterr().out
    assert len(_audit(app, "user.token_revoked")) == 1


# ----------------------------------------------------------------------------- expiry
#: A stored expiry set by the tests: long past, whenever they run.
LONG_AGO = datetime(2020, 1, 2, 3, 4, tzinfo=UTC)


def _expire(app: Any, email: str, when: datetime) -> None:
    update_user(app, email, api_token_expires_at=when)


def test_an_expired_token_is_refused_with_a_reason_and_the_way_out(
        app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    token = _create(curator)
    assert _reads(app, token) == 200
    _expire(app, users["curator"], LONG_AGO)
    api = TestClient(app, raise_server_exceptions=False)
    for method, path, body in (("GET", "/api/trials", None),
                               ("POST", "/api/decisions", {"pmid": 1, "decision": "include"})):
        refused = api.request(method, path, json=body,
                              headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401, (method, path)
        assert refused.json() == {
            "error": "the API token expired on 2020-01-02 03:04 UTC (create a new one on your "
                     "account page, /account (or ask an admin to issue one))",
            "code": "unauthenticated"}
    # any other token still gets the one answer that says nothing about who has a token
    unknown = api.get("/api/trials", headers={"Authorization": "Bearer mmlr_" + "x" * 43})
    assert unknown.status_code == 401 and "expired" not in unknown.text
    assert unknown.json()["error"].startswith("the API token is not valid")
    # the account page says so; a new token works again, for the full lifetime
    page = curator.get("/account").text
    assert "It expired 2020-01-02 03:04 UTC and no longer works" in page
    assert 'id="token-expiry-warning"' not in page  # expired, not "expires soon"
    fresh = _create(curator)
    assert _reads(app, fresh) == 200 and _reads(app, token) == 401
    renewed = _user(app, users["curator"]).api_token_expires_at
    assert renewed is not None and renewed > utcnow()


def test_account_page_warns_only_within_two_weeks_of_expiry(
        app: Any, users: dict[str, str]) -> None:
    viewer = as_role(app, users, "viewer")
    _create(viewer)
    far = utcnow() + timedelta(days=60)
    _expire(app, users["viewer"], far)
    page = viewer.get("/account").text
    assert f"It expires {utc_text(far)}." in page and 'id="token-expiry-warning"' not in page
    soon = utcnow() + timedelta(days=13)
    _expire(app, users["viewer"], soon)
    page = viewer.get("/account").text
    assert 'id="token-expiry-warning"' in page
    assert f"Your API token expires {utc_text(soon)}, in under two weeks" in page


def test_revoking_clears_the_expiry(app: Any, users: dict[str, str]) -> None:
    curator = as_role(app, users, "curator")
    _create(curator)
    assert _revoke(curator).status_code == 303
    user = _user(app, users["curator"])
    assert (user.api_token_hash, user.api_token_expires_at) == (None, None)
    assert 'id="token-expiry"' not in curator.get("/account").text


def test_admin_users_page_shows_each_tokens_expiry(app: Any, users: dict[str, str]) -> None:
    admin = as_role(app, users, "admin")
    _create(as_role(app, users, "curator"))
    _create(as_role(app, users, "viewer"))
    _expire(app, users["curator"], LONG_AGO)
    later = datetime(2099, 5, 6, 7, 8, tzinfo=UTC)
    _expire(app, users["viewer"], later)
    page = admin.get("/admin/users").text

    def cell(email: str) -> str:
        row = page[page.index(f'<tr data-email="{email}">'):]
        found = re.search(r'<td class="token">([^<]*)</td>', row[:row.index("</tr>")])
        assert found is not None, email
        return found.group(1)

    assert cell(users["curator"]) == "expired 2020-01-02 03:04 UTC"
    assert cell(users["viewer"]) == "expires 2099-05-06 07:08 UTC"
    assert cell(users["admin"]) == "—"
    # an admin's new token for the curator gets the configured lifetime again
    token = csrf_from(page)
    with db(app) as session:
        uid = session.exec(select(User).where(User.email == users["curator"])).one().id
    issued = admin.post(f"/admin/users/{uid}/token",
                        data={"csrf_token": token, "current_password": PASSWORD})
    assert issued.status_code == 200
    expires = _user(app, users["curator"]).api_token_expires_at
    assert expires is not None and utc_text(expires) in issued.text
    assert expires > utcnow() + timedelta(days=TOKEN_DAYS - 1)


@pytest.mark.empty_database
def test_tokens_from_before_0014_work_for_90_days_after_the_upgrade(db_url: str) -> None:
    """Tokens had no lifetime before 0014: they get 90 days from the upgrade rather than
    stopping at once (no client breaks the day of the upgrade); no token, no expiry."""
    from alembic import command
    from sqlalchemy import text

    from store.engine import make_engine

    engine = make_engine(db_url)
    cfg = alembic_config(engine)
    try:
        command.upgrade(cfg, "0013")
        users_table = User.__table__  # type: ignore[attr-defined]
        with engine.begin() as conn:
            for email, token_hash in (("old@example.org", hash_token("mmlr_old")),
                                      ("none@example.org", None)):
                conn.execute(users_table.insert().values(
                    email=email, role="curator", password_hash="x", api_token_hash=token_hash,
                    active=True, created_at=LONG_AGO, session_version=0))
        before = utcnow()
        command.upgrade(cfg, "head")
        after = utcnow()
        with Session(engine) as session:
            old = session.exec(select(User).where(User.email == "old@example.org")).one()
            none = session.exec(select(User).where(User.email == "none@example.org")).one()
            assert old.api_token_expires_at is not None
            assert before + timedelta(days=90) <= old.api_token_expires_at \
                <= after + timedelta(days=90)
            assert none.api_token_expires_at is None
        command.downgrade(cfg, "0013")
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT api_token_hash FROM users WHERE email = "
                                     "'old@example.org'")).scalar()
        assert kept == hash_token("mmlr_old")  # the token itself survives a downgrade
        command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def test_an_admin_session_alone_mints_neither_a_token_nor_an_account(
        app: Any, users: dict[str, str]) -> None:
    """docs/curation.md: a stolen session alone must not be able to mint a token. An admin's
    was: POST /admin/users/<id>/token with only the CSRF token issued one for anyone, the
    admin's own account included, and POST /admin/users made an admin with a chosen password.
    Both ask for the acting admin's password again, as /account does."""
    make_user(app, "second-admin@example.org", "admin")
    admin = as_role(app, users, "admin")
    with db(app) as session:
        ids = {u.email: u.id for u in session.exec(select(User))}
    token = csrf_from(admin.get("/admin/users").text)
    for email in (users["curator"], users["admin"], "second-admin@example.org"):
        bare = admin.post(f"/admin/users/{ids[email]}/token", data={"csrf_token": token})
        assert bare.status_code == 400, bare.text
        assert "current password: enter it" in bare.text
        assert "mmlr_" not in bare.text
        assert _user(app, email).api_token_hash is None
    made = admin.post("/admin/users", data={"csrf_token": token, "email": "mallory@example.org",
                                            "role": "admin",
                                            "password": "a chosen long passphrase"})
    assert made.status_code == 400 and "current password: enter it" in made.text
    assert 'id="new-current-password-error"' in made.text
    assert 'value="mallory@example.org"' in made.text  # what was typed stays
    wrong = admin.post("/admin/users", data={"csrf_token": token, "email": "mallory@example.org",
                                             "role": "admin", "current_password": "not it at all",
                                             "password": "a chosen long passphrase"})
    assert wrong.status_code == 400 and "current password: it is wrong" in wrong.text
    with db(app) as session:
        assert session.exec(select(User).where(User.email == "mallory@example.org")).first() \
            is None
    failed = _audit(app, "auth.login_failed")
    assert [(a.actor, a.details.get("via")) for a in failed] == [(users["admin"], "user_add")]

    # the row's button leads to a form that asks for the password; with it, the token is made
    form = admin.get(f"/admin/users/{ids[users['curator']]}/token")
    assert form.status_code == 200
    assert f'action="/admin/users/{ids[users["curator"]]}/token"' in form.text
    assert 'name="current_password" type="password" autocomplete="current-password"' in form.text
    issued = admin.post(f"/admin/users/{ids[users['curator']]}/token",
                        data={"csrf_token": token, "current_password": PASSWORD})
    assert issued.status_code == 200 and re.search(r"mmlr_[A-Za-z0-9_-]{43}", issued.text)
    (row,) = _audit(app, "user.token_issued")
    assert (row.actor, row.object_id) == (users["admin"], users["curator"])
    added = admin.post("/admin/users", data={"csrf_token": token, "email": "new@example.org",
                                             "role": "viewer", "current_password": PASSWORD})
    assert added.status_code == 200 and "shown once" in added.text
    (row,) = _audit(app, "user.add")[-1:]
    assert (row.actor, row.object_id) == (users["admin"], "new@example.org")


def test_the_admin_password_recheck_is_throttled(app: Any, users: dict[str, str]) -> None:
    """Wrong passwords on the admin page count as failed logins of that admin: after the
    limit even the right one is refused, 429 with Retry-After."""
    admin = as_role(app, users, "admin")
    with db(app) as session:
        uid = session.exec(select(User).where(User.email == users["viewer"])).one().id
    token = csrf_from(admin.get("/admin/users").text)
    for i in range(5):
        wrong = admin.post(f"/admin/users/{uid}/token",
                           data={"csrf_token": token, "current_password": f"guess {i} xyz"})
        assert wrong.status_code == 400
    held = admin.post(f"/admin/users/{uid}/token",
                      data={"csrf_token": token, "current_password": PASSWORD})
    assert held.status_code == 429 and held.headers["Retry-After"] == "900"
    assert "too many failed logins" in held.text and "mmlr_" not in held.text
    assert _user(app, users["viewer"]).api_token_hash is None


def test_a_refused_new_user_does_not_charge_the_admins_right_password(
        app: Any, users: dict[str, str]) -> None:
    """The admin's password was right but the new address already existed: the rollback of
    the refused add also undid the end of the password check's throttle charge, so each try
    counted as a failed login (without an audit row) and the sixth was refused with "too many
    failed logins", as was logging in again for 15 minutes."""
    admin = as_role(app, users, "admin")
    token = csrf_from(admin.get("/admin/users").text)
    for _ in range(6):
        again = admin.post("/admin/users", data={"csrf_token": token,
                                                 "email": users["curator"], "role": "viewer",
                                                 "current_password": PASSWORD})
        assert again.status_code == 400, again.text
        assert "already exists" in again.text and "too many failed logins" not in again.text
    with db(app) as session:
        charges = session.exec(select(LoginAttempt).where(
            LoginAttempt.account == users["admin"])).all()
    assert charges == []
    assert _audit(app, "auth.login_failed") == []
    assert login(TestClient(app), users["admin"]).status_code == 303
